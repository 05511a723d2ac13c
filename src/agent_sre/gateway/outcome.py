"""Who decided a proxied call's answer: the one typed record every consumer of a call's
outcome reads (circuit breakers, rollout analysis, billing, shadow copies, the span).

Whatever judges an upstream's health counts only :attr:`DecidedBy.UPSTREAM` answers, so one
agent's chaos faults, refusals or replayed recordings never change what another agent gets.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

Slot = Literal[
    "record", "identity", "admission", "routing", "faults", "capture", "settle", "forward"
]


class DecidedBy(str, Enum):
    """Who gave the answer the client got (``agent_sre.decided_by`` on the call's span)."""

    UPSTREAM = "upstream"
    """The provider answered, or failed to (timeout, unreachable, a cut stream)."""
    REFUSAL = "refusal"
    """The daemon refused the call before it went anywhere (budget, block, throttle, an open
    circuit, a bad agent key)."""
    CHAOS = "chaos"
    """A chaos fault answered the call, or changed the upstream's answer on its way back."""
    REPLAY = "replay"
    """A replay session answered from a recording (or refused a call it had no match for)."""
    SHADOW = "shadow"
    """A shadow copy sent to a rollout's candidate: measured, never given to the client."""


_BY_SLOT: dict[str, DecidedBy] = {
    "record": DecidedBy.REFUSAL,
    "identity": DecidedBy.REFUSAL,
    "admission": DecidedBy.REFUSAL,
    "routing": DecidedBy.REFUSAL,
    "faults": DecidedBy.CHAOS,
    "capture": DecidedBy.REPLAY,
    "settle": DecidedBy.REFUSAL,
    "forward": DecidedBy.UPSTREAM,
}

DELAYING_FAULTS = frozenset({"latency", "slow_stream"})
"""Faults that only delay the upstream's own answer: the upstream still decided it."""


def decided_by(slot: Slot, fault: str | None) -> DecidedBy:
    """Who decided a call answered by a stage in ``slot``, a chaos ``fault`` (its type) on
    it or not."""
    decider = _BY_SLOT[slot]
    if decider is DecidedBy.UPSTREAM and fault is not None and fault not in DELAYING_FAULTS:
        return DecidedBy.CHAOS
    return decider
