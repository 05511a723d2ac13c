"""Refusals as signals without a flood: one ``budget_refused`` signal per agent and rule
(a budget's name, ``kill_switch``, ``rate_limit``, ``pacing``, ``store``) per interval,
carrying how many calls were refused since the last one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_sre.digest import EventDigest
from agent_sre.signals import Severity, Signal

if TYPE_CHECKING:
    from agent_sre.bounded import OnEvict
    from agent_sre.cost.guard import Denial

REFUSAL_INTERVAL = 60.0
MAX_TRACKED = 10_000
"""Agent ids come from clients: past this many (agent, rule) pairs, quiet ones are dropped."""


class RefusalDigest:
    """Turns refusals into at most one signal per (agent, rule) per ``interval`` seconds
    (:class:`~agent_sre.digest.EventDigest`)."""

    def __init__(
        self,
        interval: float = REFUSAL_INTERVAL,
        max_tracked: int = MAX_TRACKED,
        on_evict: OnEvict | None = None,
    ):
        self._digest: EventDigest[tuple[str, str]] = EventDigest(
            interval, max_tracked, "refusal_digest", on_evict
        )

    def refused(self, agent_id: str, denial: Denial, now: float) -> Signal | None:
        count = self._digest.due((agent_id, denial.rule), now)
        if count is None:
            return None
        calls = "1 call" if count == 1 else f"{count} calls"
        return Signal(
            type="budget_refused",
            source="budgets",
            severity=Severity.WARNING,
            at=now,
            message=f"{calls} of agent {agent_id!r} refused ({denial.kind}, {denial.rule}): "
            f"{denial.message}",
            labels={"agent_id": agent_id, "budget": denial.rule, "kind": denial.kind},
            value=float(count),
        )

    def __len__(self) -> int:
        return len(self._digest)
