"""The light, read-once view of an OTLP span that every engine works from.

A span is read once (one pass over its attributes, keeping only the keys some engine
asked for) into an :class:`AgentSpan`; engines never touch the protobuf.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

from agent_sre.numbers import MAX_MAGNITUDE
from agent_sre.tracing import conventions as c
from agent_sre.tracing.conventions import AgentSpanKind

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from opentelemetry.proto.common.v1.common_pb2 import KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

AttrValue = Union[str, bool, int, float]  # noqa: UP007 (a runtime alias on 3.10)

STATUS_CODE_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR

# What classification reads: all a span pass decodes when no engine observes spans
# (``agent_sre.role`` marks a second view of an LLM call, which is never counted).
CLASSIFY_KEYS: frozenset[str] = frozenset(
    {
        c.AGENT_SPAN_KIND,
        c.GEN_AI_OPERATION_NAME,
        c.OPENINFERENCE_SPAN_KIND,
        c.TRACELOOP_SPAN_KIND,
        c.AGENT_SRE_ROLE,
    }
)

# The attributes the view itself interprets; engines may ask for more (SLO match keys).
CORE_KEYS: frozenset[str] = frozenset(
    {
        c.AGENT_SPAN_KIND,
        c.AGENT_ID,
        c.AGENT_DID,
        c.AGENT_VERSION,
        c.AGENT_TASK_ID,
        c.AGENT_TASK_SUCCESS,
        c.AGENT_TASK_COST_USD,
        c.AGENT_TRUST_SCORE,
        c.AGENT_DELEGATION_DEPTH,
        c.AGENT_POLICY_DECISION,
        c.AGENT_EVAL_HALLUCINATED,
        c.GEN_AI_OPERATION_NAME,
        c.GEN_AI_PROVIDER_NAME,
        c.GEN_AI_SYSTEM,
        c.GEN_AI_REQUEST_MODEL,
        c.GEN_AI_RESPONSE_MODEL,
        c.GEN_AI_USAGE_INPUT_TOKENS,
        c.GEN_AI_USAGE_OUTPUT_TOKENS,
        c.GEN_AI_USAGE_PROMPT_TOKENS,
        c.GEN_AI_USAGE_COMPLETION_TOKENS,
        c.GEN_AI_AGENT_ID,
        c.GEN_AI_AGENT_NAME,
        c.GEN_AI_TOOL_NAME,
        c.OPENINFERENCE_SPAN_KIND,
        c.TRACELOOP_SPAN_KIND,
        c.LLM_MODEL_NAME,
        c.LLM_TOKEN_COUNT_PROMPT,
        c.LLM_TOKEN_COUNT_COMPLETION,
        c.AGENT_SRE_COST_USD,
    }
)


@dataclass(slots=True)
class AgentSpan:
    """What the engines know of one span.

    ``attrs`` holds the resource's and then the span's values of the wanted keys (the span's
    value wins); every other attribute was skipped without being decoded.
    """

    kind: AgentSpanKind
    explicit_kind: bool
    name: str
    trace_id: bytes
    span_id: bytes
    start_ns: int
    end_ns: int
    is_error: bool
    attrs: dict[str, AttrValue] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e9

    @property
    def agent_id(self) -> str | None:
        return _first_str(self.attrs, c.AGENT_ID, c.GEN_AI_AGENT_ID, c.GEN_AI_AGENT_NAME)

    @property
    def task_id(self) -> str | None:
        return _first_str(self.attrs, c.AGENT_TASK_ID)

    @property
    def model(self) -> str | None:
        return _first_str(self.attrs, *c.MODEL_KEYS)

    @property
    def provider(self) -> str | None:
        return _first_str(self.attrs, c.GEN_AI_PROVIDER_NAME, c.GEN_AI_SYSTEM)

    @property
    def input_tokens(self) -> int | None:
        return first_int(self.attrs, INPUT_TOKEN_KEYS)

    @property
    def output_tokens(self) -> int | None:
        return first_int(self.attrs, OUTPUT_TOKEN_KEYS)


def _first_str(attrs: dict[str, AttrValue], *keys: str) -> str | None:
    for key in keys:
        value = attrs.get(key)
        if value is not None and value != "":
            return str(value)
    return None


MAX_TOKEN_COUNT = 10**12
"""Token counts above this (or below zero) are not usage but garbage, and are ignored."""


INPUT_TOKEN_KEYS = (
    c.GEN_AI_USAGE_INPUT_TOKENS,
    c.GEN_AI_USAGE_PROMPT_TOKENS,
    c.LLM_TOKEN_COUNT_PROMPT,
)
OUTPUT_TOKEN_KEYS = (
    c.GEN_AI_USAGE_OUTPUT_TOKENS,
    c.GEN_AI_USAGE_COMPLETION_TOKENS,
    c.LLM_TOKEN_COUNT_COMPLETION,
)


def first_int(attrs: Mapping[str, AttrValue], keys: tuple[str, ...]) -> int | None:
    """The first of ``keys`` holding a token count (see :data:`MAX_TOKEN_COUNT`)."""
    for key in keys:
        value = attrs.get(key)
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and 0 <= value <= MAX_TOKEN_COUNT
        ):
            return int(value)
    return None


_SCALAR_FIELDS = frozenset({"string_value", "int_value", "double_value", "bool_value"})
_KIND_BY_NAME = {kind.value: kind for kind in AgentSpanKind}


def read_attrs(
    attributes: Iterable[KeyValue], wanted: frozenset[str], into: dict[str, AttrValue]
) -> int:
    """Copies the wanted scalar attributes into ``into`` (later values overwrite); returns how
    many wanted values were ignored because they are not numbers the numbers gate accepts
    (NaN, +-Inf, magnitudes above :data:`~agent_sre.numbers.MAX_MAGNITUDE`), which no engine
    could count, sum or price."""
    ignored = 0
    # hot path: per attribute of every span
    for kv in attributes:
        key = kv.key
        if key in wanted:
            value = kv.value
            which = value.WhichOneof("value")
            if which in _SCALAR_FIELDS:
                scalar = getattr(value, which)
                if which == "double_value" and not -_HUGE <= scalar <= _HUGE:
                    ignored += 1  # NaN fails both comparisons
                    continue
                into[key] = scalar
    return ignored


def known_attrs(
    known: Mapping[str, AttrValue], wanted: frozenset[str], into: dict[str, AttrValue]
) -> int:
    """:func:`read_attrs` over attributes already in a dictionary (the span was built from
    it, in its order): the wanted ones copied, numbers the gate refuses counted, not copied."""
    ignored = 0
    for key, value in known.items():
        if key in wanted:
            if type(value) is float and not -_HUGE <= value <= _HUGE:
                ignored += 1  # NaN fails both comparisons
                continue
            into[key] = value
    return ignored


_HUGE = MAX_MAGNITUDE


def classify(attrs: dict[str, AttrValue]) -> tuple[AgentSpanKind, bool]:
    """Returns the agent span kind and whether the span stated it (``agent.span.kind``).

    Order of trust: explicit ``agent.span.kind``; GenAI ``gen_ai.operation.name``;
    OpenInference ``openinference.span.kind``; OpenLLMetry ``traceloop.span.kind``; else OTHER.
    """
    explicit = attrs.get(c.AGENT_SPAN_KIND)
    if isinstance(explicit, str):
        kind = _KIND_BY_NAME.get(explicit) or _KIND_BY_NAME.get(explicit.upper())
        if kind is not None and kind is not AgentSpanKind.OTHER:
            return kind, True
    operation = attrs.get(c.GEN_AI_OPERATION_NAME)
    if isinstance(operation, str) and operation in c.GEN_AI_OPERATION_KINDS:
        return c.GEN_AI_OPERATION_KINDS[operation], False
    oi_kind = attrs.get(c.OPENINFERENCE_SPAN_KIND)
    if isinstance(oi_kind, str) and oi_kind.upper() in c.OPENINFERENCE_KINDS:
        return c.OPENINFERENCE_KINDS[oi_kind.upper()], False
    tl_kind = attrs.get(c.TRACELOOP_SPAN_KIND)
    if isinstance(tl_kind, str) and tl_kind.lower() in c.TRACELOOP_KINDS:
        return c.TRACELOOP_KINDS[tl_kind.lower()], False
    return AgentSpanKind.OTHER, False


def read_span(
    span: Span,
    wanted: frozenset[str] = CORE_KEYS,
    resource_attrs: dict[str, AttrValue] | None = None,
) -> AgentSpan:
    """Reads one protobuf span into an :class:`AgentSpan`.

    Args:
        span: the OTLP span (not modified).
        wanted: attribute keys to decode; include :data:`CORE_KEYS` for the view's properties.
        resource_attrs: the wanted attributes of the span's resource, used as defaults.
    """
    attrs: dict[str, AttrValue] = resource_attrs.copy() if resource_attrs else {}
    read_attrs(span.attributes, wanted, attrs)
    kind, explicit = classify(attrs)
    return view_of(span, kind, explicit, attrs)


def view_of(
    span: Span, kind: AgentSpanKind, explicit: bool, attrs: dict[str, AttrValue]
) -> AgentSpan:
    """The view of a span whose attributes were already read and classified."""
    # positional: measurably cheaper than keywords on the per-span path
    return AgentSpan(
        kind,
        explicit,
        span.name,
        span.trace_id,
        span.span_id,
        span.start_time_unix_nano,
        span.end_time_unix_nano,
        span.status.code == STATUS_CODE_ERROR,
        attrs,
    )
