"""CustomResourceDefinitions generated from the daemon's own pydantic models.

    python -m agent_sre_operator.crds [OUTPUT_DIR]      # `make crds`

One source of truth: each CRD's ``spec`` schema is the JSON Schema of the model that reads
the same entry from the configuration file (:mod:`agent_sre_operator.kinds`), turned into a
*structural* OpenAPI v3 schema the API server accepts. What a structural schema cannot say
(a duration written as ``1h30m`` or a number; a value that may be a string, a number or a
list) is left open here and checked by the operator with the daemon's own validation, which
reports it as a ``Valid=False`` condition. ``tests/deploy/test_crds.py`` fails when the
files in the chart drift from the models.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from agent_sre_operator.kinds import GROUP, KINDS, VERSION, Kind

_DROPPED = frozenset({"title", "default", "$defs", "deprecated", "allOf", "oneOf", "not"})
"""Not carried over: titles and defaults (the daemon applies its own defaults, so a resource
holds what its author wrote), and the junctors a structural schema restricts (the operator
checks what they say with the daemon's validation)."""
_NUMERIC_TYPES = frozenset({"number", "integer"})
DURATION_TEXT = "A duration: seconds, or text such as 500ms, 8s, 1h30m, 28d."
CHART_CRDS = Path(__file__).resolve().parents[2] / "deployments" / "helm" / "agent-sre" / "crds"


def structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema (pydantic's, draft 2020-12) as a structural OpenAPI v3.0 schema.

    ``$ref`` is inlined, ``null`` branches become ``nullable``, durations become
    int-or-string, other mixed unions keep any value (the operator validates them), and
    draft-2020 numeric exclusive bounds become OpenAPI 3.0's boolean form. Titles and
    defaults go: the daemon applies its own defaults, so a resource holds what its author
    wrote.
    """
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        merged = {**defs[name], **{k: v for k, v in schema.items() if k != "$ref"}}
        return structural(merged, defs)
    if "anyOf" in schema:
        return _union(schema, defs)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROPPED:
            continue
        if key == "properties":
            out[key] = {name: structural(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = structural(value, defs)
        elif key == "additionalProperties":
            if value is False:
                continue  # structural schemas prune unknown fields; the operator reports them
            out[key] = structural(value, defs) if isinstance(value, dict) else value
        elif key == "exclusiveMinimum":
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "exclusiveMaximum":
            out["maximum"], out["exclusiveMaximum"] = value, True
        elif key == "const":
            out["enum"] = [value]
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = _type_of(out["enum"])
    return out


def _union(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    branches = [b for b in schema["anyOf"] if b.get("type") != "null"]
    nullable = len(branches) < len(schema["anyOf"])
    extra = {k: v for k, v in schema.items() if k not in _DROPPED and k != "anyOf"}
    out: dict[str, Any]
    if len(branches) == 1:
        out = structural({**branches[0], **extra}, defs)
    elif _is_duration(branches):
        out = {**extra, "x-kubernetes-int-or-string": True}
        out["description"] = extra.get("description") or DURATION_TEXT
    else:
        out = {**extra, "x-kubernetes-preserve-unknown-fields": True}
    if nullable:
        out["nullable"] = True
    return out


def _is_duration(branches: list[dict[str, Any]]) -> bool:
    """A number of seconds or a text with a pattern: the shape of every duration."""
    types = [b.get("type") for b in branches]
    strings = [b for b in branches if b.get("type") == "string"]
    return (
        set(types) <= _NUMERIC_TYPES | {"string"}
        and len(strings) == 1
        and "pattern" in strings[0]
        and any(t in _NUMERIC_TYPES for t in types)
    )


def _type_of(values: list[Any]) -> str:
    if all(isinstance(v, bool) for v in values):
        return "boolean"
    if all(isinstance(v, int) for v in values):
        return "integer"
    return "string"


def _join(*parts: str | None) -> str:
    return " ".join(p.strip() for p in parts if p)


def spec_schema(kind: Kind) -> dict[str, Any]:
    """The ``spec`` of a resource: the model's schema less ``name`` (the resource's name)."""
    raw = kind.model.model_json_schema()
    schema = structural(raw, raw.get("$defs", {}))
    schema["properties"].pop("name", None)
    required = [r for r in schema.get("required", []) if r != "name"]
    if required:
        schema["required"] = required
    else:
        schema.pop("required", None)
    schema["description"] = _join(
        raw.get("description"),
        f"The same keys as one entry of `{kind.section_path}` in the daemon's configuration "
        "(docs/configuration.md); the entry's name is the resource's name.",
    )
    return schema


CONDITION = {
    "type": "object",
    "required": ["type", "status"],
    "properties": {
        "type": {"type": "string"},
        "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
        "reason": {"type": "string"},
        "message": {"type": "string"},
        "lastTransitionTime": {"type": "string", "format": "date-time"},
        "observedGeneration": {"type": "integer"},
    },
}


def status_schema(kind: Kind) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "observedGeneration": {"type": "integer"},
        "conditions": {
            "type": "array",
            "items": CONDITION,
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
        "applied": {"type": "string", "description": "daemons running it / daemons found"},
        "daemons": {"type": "integer"},
        "daemonsApplied": {"type": "integer"},
    }
    for name, type_ in kind.status.items():
        field: dict[str, Any] = {"type": type_}
        if type_ == "object":
            field["x-kubernetes-preserve-unknown-fields"] = True
        properties[name] = field
    return {"type": "object", "properties": properties}


def crd(kind: Kind) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind."""
    columns = []
    for column in kind.columns:
        entry: dict[str, Any] = {"name": column.name, "type": column.type}
        entry["jsonPath"] = column.path
        if column.description:
            entry["description"] = column.description
        if column.priority:
            entry["priority"] = column.priority
        columns.append(entry)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": kind.crd_name,
            "labels": {"app.kubernetes.io/part-of": "agent-sre"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": ["agent-sre"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(kind),
                                "status": status_schema(kind),
                            },
                        }
                    },
                }
            ],
        },
    }


HEADER = (
    "# Generated by `make crds` (python -m agent_sre_operator.crds) from the daemon's models;\n"
    "# do not edit. tests/deploy/test_crds.py fails when this file drifts from them.\n"
)


def render_crds() -> dict[str, str]:
    """File name -> YAML text, one file per CRD."""
    return {
        f"{kind.crd_name}.yaml": HEADER + yaml.safe_dump(crd(kind), sort_keys=False, width=100)
        for kind in KINDS
    }


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else CHART_CRDS
    out.mkdir(parents=True, exist_ok=True)
    for name, text in render_crds().items():
        (out / name).write_text(text, "utf-8")
        print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
