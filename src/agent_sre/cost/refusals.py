"""Refusals as signals without a flood: one ``budget_refused`` signal per agent and rule
(a budget's name, ``kill_switch``, ``rate_limit``, ``pacing``, ``store``) per interval,
carrying how many calls were refused since the last one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_sre.signals import Severity, Signal

if TYPE_CHECKING:
    from agent_sre.cost.guard import Denial

REFUSAL_INTERVAL = 60.0
MAX_TRACKED = 10_000
"""Agent ids come from clients: past this many (agent, rule) pairs, quiet ones are dropped."""


class RefusalDigest:
    """Turns refusals into at most one signal per (agent, rule) per ``interval`` seconds.

    The first refusal signals at once (value 1); later ones within the interval are counted
    and reported, with the refusal that ends the quiet interval, as the signal's value.
    """

    def __init__(self, interval: float = REFUSAL_INTERVAL, max_tracked: int = MAX_TRACKED):
        self._interval = interval
        self._max = max_tracked
        self._last: dict[tuple[str, str], tuple[float, int]] = {}
        """(agent, rule) -> (time of the last signal, refusals counted since)."""

    def refused(self, agent_id: str, denial: Denial, now: float) -> Signal | None:
        key = (agent_id, denial.rule)
        last = self._last.get(key)
        if last is not None and now - last[0] < self._interval:
            self._last[key] = (last[0], last[1] + 1)
            return None
        count = 1 + (last[1] if last is not None else 0)
        if last is None and len(self._last) >= self._max:
            self._forget(now)
        self._last[key] = (now, 0)
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

    def _forget(self, now: float) -> None:
        self._last = {
            key: seen for key, seen in self._last.items() if now - seen[0] < self._interval
        }
        while len(self._last) >= self._max:  # all recent: drop the oldest
            del self._last[min(self._last, key=lambda key: self._last[key][0])]
