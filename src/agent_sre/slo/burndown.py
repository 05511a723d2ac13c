"""The error budget's burn-down over an SLO window: what was left at each moment of it.

Read from the bucket rings the SLO already keeps (no history is stored for it): the bad
events between the window's start and a moment ``t`` are the window's bad events minus those
after ``t``, one subtraction per point. The line starts at 1 (nothing spent) at the start of
the window and ends at the report's ``remaining_ratio`` now; it falls where bad events came.
Points are hourly where only the hour ring reaches, every :data:`FINE_STEP_MINUTES` minutes
over the last six hours, and one at ``now``, so a 30-day window is at most a few hundred
points whatever the traffic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent_sre.slo.buckets import FINE_SLOTS, MINUTES_PER_HOUR, window_buckets
from agent_sre.slo.windows import HOUR, MINUTE

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agent_sre.slo.buckets import BucketSeries

FINE_STEP_MINUTES = 5
"""Minutes between two points over the last six hours."""
MAX_HOUR_POINTS = 240
"""Hourly points beyond this many are thinned to every few hours (a 30d window: 720 h)."""


@dataclass(frozen=True)
class BurnDown:
    """``points``: ``(unix seconds, remaining ratio)``, oldest first."""

    window_s: float
    good: int
    total: int
    allowed_bad: float
    points: tuple[tuple[float, float], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "window_seconds": self.window_s,
            "good": self.good,
            "total": self.total,
            "bad": self.total - self.good,
            "allowed_bad": self.allowed_bad,
            "points": [[at, remaining] for at, remaining in self.points],
        }


def _bad(series: Sequence[BucketSeries], fine: bool, buckets: int) -> int:
    bad = 0
    for one in series:
        good, total = one.window(fine, buckets)
        bad += total - good
    return bad


def burn_down(
    series: Sequence[BucketSeries], window_s: float, hours: int, error_budget: float, now: float
) -> BurnDown:
    """The burn-down of the instances ``series`` summed (one SLO: every label set, or one).

    The series must have been advanced to the minute of ``now``.
    """
    fine, size = window_buckets(window_s, hours)
    good = total = 0
    for one in series:
        g, t = one.window(fine, size)
        good += g
        total += t
    bad_all = total - good
    allowed = error_budget * total
    minute = int(now // MINUTE)

    def remaining(bad_after: int) -> float:
        return 1.0 - (bad_all - bad_after) / allowed if allowed > 0 else 1.0

    points: list[tuple[float, float]] = []
    if fine:
        start = (minute - size + 1) * MINUTE
        fine_from = size
    else:
        hour = minute // MINUTES_PER_HOUR
        start = (hour - size + 1) * HOUR
        # hour points until the minute ring takes over (it reaches FINE_SLOTS minutes back)
        fine_from = FINE_SLOTS
        step = max(1, -(-size // MAX_HOUR_POINTS))
        for n in range(size - 1, 0, -step):
            at = (hour - n + 1) * HOUR
            if at > now - FINE_SLOTS * MINUTE:
                break
            points.append((at, remaining(_bad(series, False, n))))
    points.insert(0, (start, 1.0))
    first = fine_from - (fine_from % FINE_STEP_MINUTES)
    for m in range(first, 0, -FINE_STEP_MINUTES):
        at = (minute - m + 1) * MINUTE
        if at <= points[-1][0]:
            continue
        points.append((at, remaining(_bad(series, True, m))))
    if now > points[-1][0]:
        points.append((now, remaining(0)))
    return BurnDown(window_s, good, total, allowed, tuple(points))
