"""The base of every configuration section, and the value types sections share.

Every model of the configuration file (``config.py``, ``cost/spec.py``, ``slo/spec.py`` and
the engines to come) derives from :class:`Section`, and every duration is a
:data:`Duration`, so the file reads the same everywhere and the JSON Schema says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from agent_sre.numbers import MAX_DURATION, checked_tree
from agent_sre.units import DURATION_PATTERN, MAX_DURATION_TEXT, parse_duration, parse_endpoint

if TYPE_CHECKING:
    from pydantic import GetJsonSchemaHandler
    from pydantic.json_schema import JsonSchemaValue
    from pydantic_core import CoreSchema

DURATION_JSON_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "minimum": 0, "maximum": MAX_DURATION},
        {"type": "string", "pattern": DURATION_PATTERN, "maxLength": MAX_DURATION_TEXT},
    ]
}
"""Exactly what :func:`~agent_sre.units.parse_duration` accepts (the pattern is shared)."""

Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(DURATION_JSON_SCHEMA)]
"""Seconds; written in the file as ``500ms``, ``8s``, ``1h30m``, ``28d`` or a number of
seconds."""


def _check_endpoint(value: str) -> str:
    parse_endpoint(value)
    return value


Endpoint = Annotated[str, AfterValidator(_check_endpoint)]
"""``host:port`` (``[::1]:4317`` for IPv6); port 0 picks a free port."""


class Section(BaseModel):
    """Base of every section: unknown keys are errors, values are immutable once loaded.

    A section that renamed a key lists ``{old: new}`` in :attr:`renamed_keys`: the old name
    is still read (files written for an earlier version keep loading), the JSON Schema
    accepts it as deprecated, and giving both names is an error.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    renamed_keys: ClassVar[Mapping[str, str]] = {}

    @field_validator("*", mode="after")
    @classmethod
    def _numbers_gate(cls, value: Any) -> Any:
        """The numbers gate (:mod:`agent_sre.numbers`) on every number of every field of every
        section, in containers too: a new field cannot skip it."""
        checked_tree(value)
        return value

    @model_validator(mode="before")
    @classmethod
    def _read_old_names(cls, data: Any) -> Any:
        if not cls.renamed_keys or not isinstance(data, dict):
            return data
        data = dict(data)
        for old, new in cls.renamed_keys.items():
            if old in data:
                if new in data:
                    raise ValueError(f"give {new} or its old name {old}, not both")
                data[new] = data.pop(old)
        return data

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(core_schema)
        if not cls.renamed_keys:
            return json_schema
        target = handler.resolve_ref_schema(json_schema)
        properties = target.setdefault("properties", {})
        exclusive = []
        for old, new in cls.renamed_keys.items():
            properties[old] = {
                **{k: v for k, v in properties[new].items() if k != "default"},
                "title": old,
                "description": f"Old name of {new}, still read.",
                "deprecated": True,
            }
            exclusive.append({"not": {"required": [old, new]}})
        target["allOf"] = [*target.get("allOf", []), *exclusive]
        return json_schema
