"""What linking an agent's LLM (or tool) span with the proxy's record of the call writes onto
both.

The agent's span (the event) takes the proxy's facts: every ``agent_sre.*`` attribute the
proxy wrote (route, time to first token, budget decision, cost, and whatever later stages
add) and the caller's identity when it lacks it. The proxy's span becomes the ``gateway``
view: it joins the agent's trace as a child of the agent's span when it had no trace of its
own, and its cost moves to ``agent_sre.gateway.cost_usd`` so that summing
``agent_sre.cost_usd`` over the spans forwarded gives the spend once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_sre.tracing import conventions as c

if TYPE_CHECKING:
    from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    from agent_sre.tracing.correlate import CallFacts
    from agent_sre.tracing.view import AgentSpan, AttrValue

IDENTITY_KEYS: tuple[str, ...] = (
    c.AGENT_ID,
    c.AGENT_TASK_ID,
    c.AGENT_VERSION,
    "agent.team",
    c.GEN_AI_AGENT_ID,
    c.GEN_AI_AGENT_NAME,
)
"""Who made the call; copied to the side that lacks it."""

_NOT_COPIED = frozenset({c.AGENT_SRE_NODE, c.AGENT_SRE_ROLE, c.AGENT_SRE_LINKED_BY})
_DELEGATION_PREFIX = "agent.delegation."
_FLAGS_REMOTE_PARENT = 0x100 | 0x200


def identity_of(view: AgentSpan) -> dict[str, str]:
    """The identity attributes of an agent's span (its resource's included)."""
    attrs = view.attrs
    return {
        key: value for key in IDENTITY_KEYS if isinstance(value := attrs.get(key), str) and value
    }


def scalar(kv: KeyValue) -> AttrValue | None:
    value = kv.value
    which = value.WhichOneof("value")
    if which in ("string_value", "int_value", "double_value", "bool_value"):
        result: AttrValue = getattr(value, which)
        return result
    return None


def add_attribute(
    attributes: RepeatedCompositeFieldContainer[KeyValue], key: str, value: AttrValue
) -> None:
    kv = attributes.add()
    kv.key = key
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    else:
        kv.value.string_value = value


def apply_gateway_facts(agent_span: Span, view: AgentSpan, gateway_span: Span, key: str) -> None:
    """Writes the proxy's facts onto the agent's span (its own values win) and its view."""
    present = {kv.key for kv in agent_span.attributes}
    attributes = agent_span.attributes
    attrs = view.attrs
    for kv in gateway_span.attributes:
        name = kv.key
        copy = (
            (name.startswith("agent_sre.") and name not in _NOT_COPIED)
            or name in IDENTITY_KEYS
            or name == c.ERROR_TYPE
            or name.startswith(_DELEGATION_PREFIX)  # depth, callee, task: what SLOs read
        )
        if not copy or name in present or (name in IDENTITY_KEYS and name in attrs):
            continue
        value = scalar(kv)
        if value is None:
            continue
        add_attribute(attributes, name, value)
        attrs[name] = value
    add_attribute(attributes, c.AGENT_SRE_GATEWAY_SPAN_ID, gateway_span.span_id.hex())
    add_attribute(attributes, c.AGENT_SRE_LINKED_BY, key)
    attrs[c.AGENT_SRE_GATEWAY_SPAN_ID] = gateway_span.span_id.hex()


def mark_gateway(
    gateway_span: Span,
    event: CallFacts,
    key: str,
    identity: dict[str, str],
    move_cost: bool,
) -> None:
    """Marks the proxy's span as the gateway view of the call ``event`` counts.

    Args:
        event: the agent's span that counts for the call.
        identity: the agent's identity attributes, added where the proxy's span lacks them.
        move_cost: the event carries the cost: ``agent_sre.cost_usd`` becomes
            ``agent_sre.gateway.cost_usd`` here.
    """
    attributes = gateway_span.attributes
    present = set()
    for kv in attributes:
        present.add(kv.key)
        if move_cost and kv.key == c.AGENT_SRE_COST_USD:
            kv.key = c.AGENT_SRE_GATEWAY_COST_USD
    if not gateway_span.parent_span_id and event.trace_id != gateway_span.trace_id:
        gateway_span.trace_id = event.trace_id
        gateway_span.parent_span_id = event.span_id
        gateway_span.flags = _FLAGS_REMOTE_PARENT
    for name, value in identity.items():
        if name not in present:
            add_attribute(attributes, name, value)
    _mark(attributes, c.ROLE_GATEWAY, event, key)


def mark_duplicate(span: Span, view: AgentSpan, event: CallFacts, key: str) -> None:
    """Marks an agent's span whose call was counted already (by ``event``)."""
    attributes = span.attributes
    for kv in attributes:
        if kv.key == c.AGENT_SRE_COST_USD:
            kv.key = c.AGENT_SRE_DUPLICATE_COST_USD
    view.attrs.pop(c.AGENT_SRE_COST_USD, None)
    view.attrs[c.AGENT_SRE_ROLE] = c.ROLE_DUPLICATE
    _mark(attributes, c.ROLE_DUPLICATE, event, key)


def _mark(
    attributes: RepeatedCompositeFieldContainer[KeyValue], role: str, event: CallFacts, key: str
) -> None:
    add_attribute(attributes, c.AGENT_SRE_ROLE, role)
    add_attribute(attributes, c.AGENT_SRE_EVENT_SPAN_ID, event.span_id.hex())
    add_attribute(attributes, c.AGENT_SRE_EVENT_TRACE_ID, event.trace_id.hex())
    add_attribute(attributes, c.AGENT_SRE_LINKED_BY, key)


LINK_KEYS: frozenset[str] = frozenset(
    {
        c.GEN_AI_RESPONSE_ID,
        *c.MODEL_KEYS,
        *c.USAGE_KEYS,
        c.AGENT_SRE_COST_USD,
        c.AGENT_SRE_ROLE,
        c.AGENT_SRE_PROXY_ROUTE,
        *IDENTITY_KEYS,
    }
)
"""What linking reads from an LLM span."""


TOOL_LINK_KEYS: frozenset[str] = frozenset(
    {
        c.GEN_AI_TOOL_NAME,
        c.TOOL_NAME,
        c.MCP_METHOD_NAME,
        c.AGENT_SRE_COST_USD,
        c.AGENT_SRE_ROLE,
        c.AGENT_SRE_PROXY_ROUTE,
        *IDENTITY_KEYS,
    }
)
"""What linking reads from a tool span."""


DELEGATION_LINK_KEYS: frozenset[str] = frozenset(
    {
        c.AGENT_DELEGATION_CALLEE,
        c.AGENT_DELEGATION_DEPTH,
        c.AGENT_SRE_COST_USD,
        c.AGENT_SRE_ROLE,
        c.AGENT_SRE_PROXY_ROUTE,
        *IDENTITY_KEYS,
    }
)
"""What linking reads from a DELEGATION span."""
