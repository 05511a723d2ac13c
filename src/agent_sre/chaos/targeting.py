"""Which calls an experiment touches: the call's facts against its targets, then a share.

# hot path: per proxied call while an experiment runs. Matching reads a few strings; the
share and each fault's probability are decided with an injected ``draw`` (uniform in
[0, 1)), so tests fix the sequence and the daemon uses a real random source.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent_sre.gateway.providers import PROVIDERS
from agent_sre.gateway.providers.base import SSE

if TYPE_CHECKING:
    from agent_sre.chaos.spec import FaultSpec, TargetSpec

Draw = Callable[[], float]
"""A uniform random number in [0, 1)."""


@dataclass(frozen=True)
class CallFacts:
    """What targeting reads of one call."""

    route: str
    api: str = ""
    agent_id: str = ""
    agent_version: str = ""
    model: str = ""
    tool: str = ""
    mcp_method: str = ""
    stream: bool = False


def _listed(values: Sequence[str], value: str) -> bool:
    if not values:
        return True
    for wanted in values:
        if wanted.endswith("*") and value.startswith(wanted[:-1]):
            return True
        if wanted == value:
            return True
    return False


def matches(target: TargetSpec, call: CallFacts) -> bool:
    """The call is one the experiment may touch (before the share is drawn)."""
    return (
        _listed(target.routes, call.route)
        and _listed(target.agents, call.agent_id)
        and _listed(target.agent_versions, call.agent_version)
        and _listed(target.models, call.model)
        and _listed(target.tools, call.tool)
        and _listed(target.mcp_methods, call.mcp_method)
    )


# hot path: per proxied call and running experiment
def may_match(target: TargetSpec, route: str, agent_id: str) -> bool:
    """False when the call's route or agent alone rules it out of :func:`matches` (checked
    before the call's facts are built: most calls are nobody's target)."""
    return _listed(target.routes, route) and _listed(target.agents, agent_id)


def chosen(share: float, draw: Draw) -> bool:
    """One matching call falls in the experiment's share."""
    return share >= 1.0 or (share > 0.0 and draw() < share)


def applicable(fault: FaultSpec, call: CallFacts) -> bool:
    """The fault can be shaped for this call (stream faults need a stream, tool faults a
    tool call, token inflation an LLM call)."""
    kind = fault.type
    provider = PROVIDERS.get(call.api)
    # faults that rewrite a stream's events know server-sent events, not binary framing
    events = provider is not None and provider.stream_type == SSE
    if kind == "slow_stream":
        return call.stream
    if kind == "truncated_stream":
        return call.stream and events
    if kind == "tool_error":
        return call.api in ("tool", "mcp", "a2a")
    if kind == "token_inflation":
        return provider is not None and provider.llm and (events or not call.stream)
    return True


def pick_fault(faults: Sequence[FaultSpec], call: CallFacts, draw: Draw) -> FaultSpec | None:
    """At most one fault per call: the first, in declared order, whose own probability
    hits among those that apply to the call."""
    for fault in faults:
        if not applicable(fault, call):
            continue
        if fault.probability >= 1.0 or (fault.probability > 0.0 and draw() < fault.probability):
            return fault
    return None
