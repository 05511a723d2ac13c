"""Auto-throttle: pace an agent whose spend rate would exhaust a budget before it resets.

The agent's spend rate is an exponentially decayed sum of its spend over a time constant
``tau`` (so a short burst barely moves it, a sustained pace does). When that rate, kept up,
would spend the room left in a budget before the budget's window ends, the agent waits until
the rate has decayed to the sustainable one: ``tau * ln(rate / sustainable)`` seconds.

Kept per agent id (clients choose them): at most ``MAX_AGENTS`` agents, and an agent idle for
``IDLE_TAUS`` time constants is forgotten (its decayed spend is below e**-20 of what it was).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from agent_sre.bounded import BoundedMap

if TYPE_CHECKING:
    from agent_sre.bounded import OnEvict

MAX_AGENTS = 10_000
IDLE_TAUS = 20


class SpendPacer:
    """Per-agent decayed spend and the wait it implies against a budget's room."""

    def __init__(self, tau: float = 300.0, on_evict: OnEvict | None = None) -> None:
        self._tau = tau
        self._spend: BoundedMap[str, tuple[float, float]] = BoundedMap(
            "pacing", MAX_AGENTS, idle_seconds=IDLE_TAUS * tau, on_evict=on_evict
        )

    def rate(self, agent_id: str, now: float) -> float:
        """USD per second the agent has been spending lately."""
        return self._decayed(agent_id, now) / self._tau

    def wait_for(self, agent_id: str, remaining_usd: float, horizon: float, now: float) -> float:
        """Seconds the agent should wait before its next call (0: go ahead).

        Args:
            remaining_usd: room left in a budget that applies.
            horizon: seconds until that budget's window ends.
        """
        if remaining_usd <= 0 or not math.isfinite(horizon) or horizon <= 0:
            return 0.0  # the budget itself refuses, or never resets: nothing to pace
        spent = self._decayed(agent_id, now)
        sustainable = remaining_usd / horizon
        if spent <= 0 or spent / self._tau <= sustainable:
            return 0.0
        return self._tau * math.log(spent / (self._tau * sustainable))

    def settled(self, agent_id: str, cost_usd: float, now: float) -> None:
        self._spend.put(agent_id, (self._decayed(agent_id, now) + cost_usd, now), now)

    def __len__(self) -> int:
        return len(self._spend)

    def _decayed(self, agent_id: str, now: float) -> float:
        spent, at = self._spend.get(agent_id, now) or (0.0, now)
        return spent * math.exp(-max(0.0, now - at) / self._tau)
