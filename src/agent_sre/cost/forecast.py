"""A budget subject's spend over its window and when, at the current rate, it reaches the
limit.

Read from the ledger's bucket counters (the ones admission already keeps): the spend series
is the running sum of the window's buckets; the rate is the spend of a calendar window
(``day``, ``month``) over the time it has covered so far, or the spend of the last sixth of a
rolling window (``1h``: the last 10 minutes) over that time; the forecast is linear. For a
calendar window an exhaustion later than the window's end is no exhaustion (the window
resets first); for a rolling window (``1h``, ``24h``) the spend only reaches the limit if the
rate kept over a whole window exceeds it (old spend leaves the window as new comes in).
"""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from agent_sre.cost.windows import position

if TYPE_CHECKING:
    from collections.abc import Mapping

    from agent_sre.cost.spec import BudgetSpec, BudgetWindow

_ROLLING_WIDTH = {"1h": 60.0, "24h": 900.0}
_DAY = 86400.0
RECENT_SHARE = 6
"""A rolling window's rate is read over its last 1/RECENT_SHARE."""


@dataclass(frozen=True)
class SpendForecast:
    """One subject of one budget at ``now``."""

    spent_usd: float
    limit_usd: float
    window_start: float | None
    """Unix seconds; None for ``per_task`` (no time window)."""
    window_end: float | None
    """When a calendar window resets (None for rolling and ``per_task``)."""
    rate_usd_per_s: float | None
    exhaustion_in_s: float | None
    """0 when the limit is reached; None when the current rate does not reach it (in this
    window)."""
    points: tuple[tuple[float, float], ...]
    """``(unix seconds, spend so far in the window)``, oldest first."""

    def to_dict(self, now: float) -> dict[str, Any]:
        return {
            "spent_usd": self.spent_usd,
            "limit_usd": self.limit_usd,
            "used": self.spent_usd / self.limit_usd if self.limit_usd > 0 else None,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "rate_usd_per_hour": None
            if self.rate_usd_per_s is None
            else self.rate_usd_per_s * 3600.0,
            "exhaustion_in_s": self.exhaustion_in_s,
            "exhaustion_at": None if self.exhaustion_in_s is None else now + self.exhaustion_in_s,
            "points": [[at, spent] for at, spent in self.points],
        }


def _month_start(bucket: int) -> float:
    year, month = divmod(bucket, 12)
    return datetime(year, month + 1, 1, tzinfo=timezone.utc).timestamp()


def _bucket_span(window: BudgetWindow, bucket: int) -> tuple[float, float]:
    """``(start, end)`` of one bucket in Unix seconds."""
    if window in _ROLLING_WIDTH:
        width = _ROLLING_WIDTH[window]
        return bucket * width, (bucket + 1) * width
    if window == "day":
        return bucket * _DAY, (bucket + 1) * _DAY
    start = _month_start(bucket)
    year, month = divmod(bucket, 12)
    return start, start + calendar.monthrange(year, month + 1)[1] * _DAY


def spend_forecast(spec: BudgetSpec, buckets: Mapping[int, float], now: float) -> SpendForecast:
    """The spend series and forecast of one subject from its ``{bucket: spent_usd}`` counters
    (any buckets: those outside the window at ``now`` are left out; non-finite spend, which an
    old ledger may hold, counts as none)."""
    limit = spec.limit_usd
    where = position(spec.window, now)
    if spec.window == "per_task":
        spent = sum(v for v in buckets.values() if math.isfinite(v))
        left = 0.0 if spent >= limit else None
        return SpendForecast(spent, limit, None, None, None, left, ())
    first, last = where.first, where.bucket
    start = _bucket_span(spec.window, first)[0]
    rolling = spec.window in _ROLLING_WIDTH
    points: list[tuple[float, float]] = [(start, 0.0)]
    spent = 0.0
    for bucket in sorted(b for b in buckets if first <= b <= last):
        value = buckets[bucket]
        if not math.isfinite(value) or value == 0:
            continue
        spent += value
        points.append((min(now, _bucket_span(spec.window, bucket)[1]), spent))
    if points[-1][0] < now:
        points.append((now, spent))
    if rolling:
        recent_span = where.horizon / RECENT_SHARE
        recent = sum(
            v
            for b, v in buckets.items()
            if first <= b <= last
            and math.isfinite(v)
            and _bucket_span(spec.window, b)[1] > now - recent_span
        )
        rate = recent / recent_span
    else:
        rate = spent / max(now - start, 1.0)
    end = None if rolling else _bucket_span(spec.window, last)[1]
    exhaustion: float | None
    if spent >= limit:
        exhaustion = 0.0
    elif rate <= 0:
        exhaustion = None
    else:
        exhaustion = (limit - spent) / rate
        if end is not None and now + exhaustion > end:
            exhaustion = None  # the window resets first
        elif rolling and rate * where.horizon <= limit:
            exhaustion = None  # a whole window at this rate stays under the limit
    return SpendForecast(spent, limit, start, end, rate, exhaustion, tuple(points))
