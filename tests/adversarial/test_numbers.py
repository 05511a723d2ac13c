"""Class 1 of issue 18, in the core: every number from outside passes one gate
(:mod:`agent_sre.numbers`). NaN, infinities, huge, denormal and past-int64 values are refused
in every configuration field (enumerated from the models, so a new field is driven too), in
durations (both the string and the number path), in throttle requests and in the JSON reader
of admin bodies; span timestamps are clamped to what can be stored."""

from __future__ import annotations

import math
import types
import typing
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError, create_model

from agent_sre.config import Config, ConfigError, load_config
from agent_sre.delivery.spec import RolloutSpec
from agent_sre.incidents.throttles import ThrottleRequest, ThrottleRequestError
from agent_sre.jsonbody import JsonBodyError, read_json
from agent_sre.numbers import (
    INT64_MAX,
    MAX_MAGNITUDE,
    MAX_SPAN_NS,
    MIN_MAGNITUDE,
    NumberError,
    checked_number,
    number_from_text,
)
from agent_sre.section import Section
from agent_sre.units import parse_duration

if TYPE_CHECKING:
    from pathlib import Path

HUGE_INTS = st.integers(min_value=INT64_MAX + 1, max_value=10**400) | st.integers(
    max_value=-(INT64_MAX + 2), min_value=-(10**400)
)
BAD_FLOATS = st.sampled_from([math.nan, math.inf, -math.inf, 5e-324, -5e-324, 1e300]) | (
    st.floats(min_value=MAX_MAGNITUDE * 1.0001, allow_infinity=False)
    | st.floats(min_value=5e-324, max_value=MIN_MAGNITUDE / 2, exclude_min=False)
)
BAD_NUMBERS = (
    BAD_FLOATS | HUGE_INTS | st.integers(min_value=int(MAX_MAGNITUDE) + 1, max_value=INT64_MAX)
)


# -- the gate itself --------------------------------------------------------------------


@given(BAD_NUMBERS)
def test_the_gate_refuses_every_bad_number(value: float | int) -> None:
    with pytest.raises(NumberError):
        checked_number(value)


@given(
    st.floats(min_value=-MAX_MAGNITUDE, max_value=MAX_MAGNITUDE).filter(
        lambda x: x == 0 or abs(x) >= MIN_MAGNITUDE
    )
    | st.integers(-(10**15), 10**15)
)
def test_the_gate_keeps_every_ordinary_number(value: float | int) -> None:
    assert checked_number(value) == value


@given(
    st.sampled_from(
        ["nan", "NaN", "inf", "-Infinity", "1e300", "5e-324", "1" * 400, "0x10", "", " ", "1_000"]
    )
)
def test_numbers_as_text_are_refused_clearly(text: str) -> None:
    with pytest.raises(NumberError) as refused:
        number_from_text(text)
    assert str(refused.value)


# -- durations: the string path has the number path's checks -----------------------------


@given(st.integers(min_value=13, max_value=500), st.sampled_from(["ms", "s", "m", "h", "d", "w"]))
def test_a_duration_written_with_many_digits_is_refused(digits: int, unit: str) -> None:
    with pytest.raises(ValueError):
        parse_duration("9" * digits + unit)


@given(BAD_NUMBERS | st.floats(max_value=-MIN_MAGNITUDE, allow_nan=False, allow_infinity=False))
def test_a_duration_as_a_number_is_gated(value: float) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_durations_still_read() -> None:
    assert parse_duration("1h30m") == 5400.0
    assert parse_duration("250ms") == 0.25
    assert parse_duration(0) == 0.0
    assert parse_duration("3650d") == 3650 * 86400.0


# -- every number field of the configuration --------------------------------------------


def _models(root: type[BaseModel]) -> list[type[BaseModel]]:
    """Every model reachable from ``root``'s fields."""
    seen: list[type[BaseModel]] = []
    todo = [root]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.append(model)
        for field in model.model_fields.values():
            todo += [t for t in _leaves(field.annotation) if isinstance(t, type) and
                     issubclass(t, BaseModel)]  # fmt: skip
    return seen


def _leaves(annotation: Any, containers: bool = True) -> list[Any]:
    """The types in ``annotation`` (through unions and, with ``containers``, lists/dicts)."""
    out, todo = [], [annotation]
    while todo:
        item = todo.pop()
        origin = typing.get_origin(item)
        if origin is typing.Annotated:
            todo.append(typing.get_args(item)[0])
        elif origin is typing.Union or isinstance(item, types.UnionType):
            todo += list(typing.get_args(item))
        elif origin is not None and not containers:
            continue
        elif origin is not None:
            todo += [a for a in typing.get_args(item) if a is not Ellipsis]
        else:
            out.append(item)
    return out


def _number_fields() -> list[tuple[type[BaseModel], str]]:
    found = []
    for model in {*_models(Config), *_models(RolloutSpec)}:
        for name, field in model.model_fields.items():
            leaves = _leaves(field.annotation)
            if any(t in (int, float) for t in leaves):
                found.append((model, name))
    return sorted(found, key=lambda f: (f[0].__name__, f[1]))


NUMBER_FIELDS = _number_fields()


def test_every_configuration_model_is_a_section() -> None:
    """The gate lives in :class:`Section`: a model that is not one would skip it."""
    models = {*_models(Config), *_models(RolloutSpec)}
    assert len(models) > 30
    assert [m.__name__ for m in models if not issubclass(m, Section)] == []
    assert len(NUMBER_FIELDS) > 60, NUMBER_FIELDS


def _probe(model: type[BaseModel], name: str) -> type[BaseModel]:
    field = model.model_fields[name]
    return create_model(f"Probe_{model.__name__}_{name}", __base__=Section,
                        value=(field.annotation, field))  # fmt: skip


GOOD = (1, 0.75, 500, 0, 10, 2.5, 3600)


def _shapes(value: Any) -> list[Any]:
    return [value, [value], {"k": value}]


@pytest.mark.parametrize(("model", "name"), NUMBER_FIELDS,
                         ids=[f"{m.__name__}.{n}" for m, n in NUMBER_FIELDS])  # fmt: skip
@settings(max_examples=25, deadline=None)
@given(bad=BAD_NUMBERS)
def test_every_number_field_refuses_bad_numbers(
    model: type[BaseModel], name: str, bad: Any
) -> None:
    probe = _probe(model, name)
    shapes = []
    for good in GOOD:
        for index, shaped in enumerate(_shapes(good)):
            try:
                probe.model_validate({"value": shaped})
            except ValidationError:
                continue
            shapes.append(index)
    assert shapes, f"{model.__name__}.{name}: no ordinary value accepted"
    for index in set(shapes):
        with pytest.raises(ValidationError):
            probe.model_validate({"value": _shapes(bad)[index]})


def _dict_paths() -> list[tuple[str, ...]]:
    """Paths from the top of the file to number fields through sections with defaults (no
    lists): these are driven through the real loader, YAML and all."""
    paths: list[tuple[str, ...]] = []

    def visit(model: type[BaseModel], prefix: tuple[str, ...]) -> None:
        for name, field in model.model_fields.items():
            leaves = _leaves(field.annotation, containers=False)
            if field.is_required():
                continue
            if any(t in (int, float) for t in leaves):
                paths.append((*prefix, name))
            for t in leaves:
                if isinstance(t, type) and issubclass(t, Section):
                    visit(t, (*prefix, name))

    visit(Config, ())
    return paths


DICT_PATHS = _dict_paths()


@pytest.mark.parametrize("path", DICT_PATHS, ids=[".".join(p) for p in DICT_PATHS])
@pytest.mark.parametrize("bad", [".nan", ".inf", "-.inf", "1e300", "5e-324", str(2**64)])
def test_the_loader_names_file_line_and_field(
    tmp_path: Path, path: tuple[str, ...], bad: str
) -> None:
    """``file:line: dotted.field: message`` for a bad number in any field of the file."""
    assert len(DICT_PATHS) >= 40
    text = ""
    for depth, key in enumerate(path):
        text += "  " * depth + f"{key}:" + (f" {bad}\n" if depth == len(path) - 1 else "\n")
    file = tmp_path / "agent-sre.yaml"
    file.write_text(text)
    with pytest.raises(ConfigError) as refused:
        load_config(str(file))
    dotted = ".".join(path)
    line = len(path)
    assert any(p.startswith(f"{file}:{line}: {dotted}: ") for p in refused.value.problems), (
        refused.value.problems
    )


def test_a_rollout_gate_of_nan_is_refused() -> None:
    """Instance: ``threshold: NaN`` answered 201 and promoted a failing candidate."""
    for bad in (math.nan, "NaN", math.inf, -1.0, 5e-324, 2.0):
        check = {"metric": "success_ratio", "threshold": bad}
        spec = {"name": "r", "route": "openai", "baseline": "a", "candidate": "b",
                "analysis": {"checks": [check]}}  # fmt: skip
        with pytest.raises(ValidationError):
            RolloutSpec.model_validate(spec)


# -- throttle requests (a hand-read body) -------------------------------------------------


@given(rpm=BAD_NUMBERS | st.floats(max_value=0.0009, allow_nan=False, allow_infinity=False))
def test_a_throttle_rate_is_gated(rpm: float) -> None:
    """Instance: ``requests_per_minute: 5e-324`` answered 500 on the agent's next call."""
    with pytest.raises(ThrottleRequestError) as refused:
        ThrottleRequest.from_json({"agent_id": "a", "requests_per_minute": rpm})
    assert refused.value.field == "requests_per_minute"


@given(lasting=BAD_NUMBERS.filter(lambda v: not (isinstance(v, float) and v == 0))
       | st.integers(min_value=40, max_value=600).map(lambda n: "1" * n + "s"))  # fmt: skip
def test_a_throttle_duration_is_gated(lasting: Any) -> None:
    """Instance: a ``for:`` of 400 digits became ``until=inf``."""
    with pytest.raises(ThrottleRequestError) as refused:
        ThrottleRequest.from_json({"agent_id": "a", "for": lasting})
    assert refused.value.field == "for"


# -- the JSON reader's number checks ------------------------------------------------------


@given(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "5e-324",
                        "1" + "0" * 30, "1" * 400]))  # fmt: skip
def test_the_json_reader_refuses_bad_numbers_naming_where(literal: str) -> None:
    with pytest.raises(JsonBodyError) as refused:
        read_json(f'{{"a": [{{"b": {literal}}}]}}', numbers=True)
    assert "a[0].b" in str(refused.value) or "body" in str(refused.value)


def test_span_times_are_clamped_to_what_is_stored() -> None:
    """Instance: a span stamped 2^64-1 ns made the trace buffer lose a whole flush."""
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    from agent_sre.replay.traces import TraceIndex
    from agent_sre.tracing.conventions import AgentSpanKind
    from agent_sre.tracing.view import view_of

    index = TraceIndex()
    span = Span(trace_id=b"\1" * 16, span_id=b"\2" * 8, name="x",
                start_time_unix_nano=2**64 - 1, end_time_unix_nano=2**64 - 1)  # fmt: skip
    index.tap(view_of(span, AgentSpanKind.AGENT_TASK, True, {}), 0.0)
    (summary,) = index.take()
    assert summary.start_ns == summary.end_ns == MAX_SPAN_NS


def test_yaml_of_the_instances_reads_as_numbers() -> None:
    # the YAML forms above are numbers to the loader (not strings it would refuse anyway)
    assert math.isnan(yaml.safe_load("x: .nan")["x"])
    assert yaml.safe_load("x: 5e-324")["x"] in (5e-324, "5e-324")


@given(st.sampled_from([math.nan, math.inf, -math.inf, 1e300, -1e300, MAX_MAGNITUDE * 2]))
def test_span_attribute_numbers_pass_the_gate(value: float) -> None:
    """A cost, trust score or depth an agent sends as a double: refused (counted as
    ignored), never summed into a budget or an SLO."""
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue

    from agent_sre.tracing.view import read_attrs

    kv = KeyValue(key="agent.task.cost_usd")
    kv.value.double_value = value
    into: dict[str, Any] = {}
    assert read_attrs([kv], frozenset({"agent.task.cost_usd"}), into) == 1
    assert into == {}
