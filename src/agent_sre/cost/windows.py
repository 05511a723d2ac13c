"""Budget windows as fixed buckets of counters, so no per-call state grows with traffic.

A window is a run of ``span`` consecutive buckets ending at the current one. Calendar
windows (``day``, ``month`` in UTC) and ``per_task`` are a single bucket; rolling windows
are 60 one-minute buckets (``1h``) or 96 quarter-hour buckets (``24h``).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent_sre.cost.spec import BudgetWindow

_ROLLING = {"1h": (60.0, 60), "24h": (900.0, 96)}


@dataclass(frozen=True)
class WindowPosition:
    """Where ``now`` falls in a budget window."""

    bucket: int
    """Index of the current bucket (monotonic across windows of the same kind)."""
    span: int
    """How many buckets, ending at ``bucket``, the window covers."""
    ends_in: float
    """Seconds until the current bucket closes: when room frees up or the window resets
    (``inf`` for ``per_task``)."""
    horizon: float
    """Seconds from now to the end of the window (for pacing); ``inf`` for ``per_task``."""

    @property
    def first(self) -> int:
        """The oldest bucket the window covers."""
        return first_bucket(self.bucket, self.span)


def first_bucket(bucket: int, span: int) -> int:
    """The oldest of ``span`` buckets ending at ``bucket``."""
    return bucket - span + 1


def position(window: BudgetWindow, now: float) -> WindowPosition:
    """The bucket of ``now`` (Unix seconds) in ``window``."""
    if window == "per_task":
        return WindowPosition(0, 1, float("inf"), float("inf"))
    if window in _ROLLING:
        width, span = _ROLLING[window]
        bucket = int(now // width)
        return WindowPosition(bucket, span, (bucket + 1) * width - now, width * span)
    if window == "day":
        bucket = int(now // 86400)
        end = (bucket + 1) * 86400.0 - now
        return WindowPosition(bucket, 1, end, end)
    when = datetime.fromtimestamp(now, tz=timezone.utc)
    days = calendar.monthrange(when.year, when.month)[1]
    start = datetime(when.year, when.month, 1, tzinfo=timezone.utc).timestamp()
    end = start + days * 86400.0 - now
    return WindowPosition(when.year * 12 + when.month - 1, 1, end, end)
