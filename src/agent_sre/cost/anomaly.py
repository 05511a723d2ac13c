"""Spend anomalies: an EWMA of each agent's spend per interval and its deviation.

Kept per agent id (clients choose them): at most ``MAX_AGENTS`` series, and a series idle for
``IDLE_SECONDS`` is forgotten (the agent starts a new warm-up when it spends again).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent_sre.bounded import BoundedMap

if TYPE_CHECKING:
    from agent_sre.bounded import OnEvict
    from agent_sre.cost.spec import AnomalySpec

MAX_AGENTS = 10_000
IDLE_SECONDS = 86_400.0


@dataclass
class _Series:
    interval: int
    current: float = 0.0
    mean: float = 0.0
    variance: float = 0.0
    seen: int = 0
    flagged: int = -1


@dataclass(frozen=True)
class SpendAnomaly:
    agent_id: str
    interval_usd: float
    expected_usd: float
    sigma: float


class SpendAnomalyDetector:
    """Flags an interval whose spend exceeds the EWMA by ``threshold_sigma`` deviations."""

    def __init__(self, spec: AnomalySpec, on_evict: OnEvict | None = None) -> None:
        self._spec = spec
        self._series: BoundedMap[str, _Series] = BoundedMap(
            "anomaly", MAX_AGENTS, idle_seconds=IDLE_SECONDS, on_evict=on_evict
        )

    def __len__(self) -> int:
        return len(self._series)

    def observe(self, agent_id: str, usd: float, now: float) -> SpendAnomaly | None:
        """Adds spend at ``now``; returns an anomaly once per interval that is one."""
        if not self._spec.enabled:
            return None
        interval = int(now // self._spec.interval)
        series = self._series.get(agent_id, now)
        if series is None:
            series = _Series(interval)
            self._series.put(agent_id, series, now)
        while series.interval < interval:
            self._close(series)
        series.current += usd
        return self._check(agent_id, series)

    def _close(self, series: _Series) -> None:
        alpha = self._spec.alpha
        if series.seen == 0:
            series.mean = series.current
        else:
            delta = series.current - series.mean
            series.mean += alpha * delta
            series.variance = (1 - alpha) * (series.variance + alpha * delta * delta)
        series.seen += 1
        series.current = 0.0
        series.interval += 1

    def _check(self, agent_id: str, series: _Series) -> SpendAnomaly | None:
        spec = self._spec
        if series.seen < spec.warmup_intervals or series.flagged == series.interval:
            return None
        if series.current < spec.min_usd:
            return None
        deviation = math.sqrt(series.variance)
        floor = max(deviation, series.mean * 0.1, 1e-9)
        sigma = (series.current - series.mean) / floor
        if sigma < spec.threshold_sigma:
            return None
        series.flagged = series.interval
        return SpendAnomaly(agent_id, series.current, series.mean, sigma)
