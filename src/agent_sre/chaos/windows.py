"""Weekly UTC windows: when an experiment starts by itself, and when nothing is injected."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from agent_sre.chaos.spec import WEEKDAYS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agent_sre.chaos.spec import WindowSpec


def _minutes(clock_time: str) -> int:
    hours, minutes = clock_time.split(":")
    return int(hours) * 60 + int(minutes)


def in_window(window: WindowSpec, now: float) -> bool:
    """``now`` (unix seconds) falls in ``window``."""
    at = datetime.fromtimestamp(now, tz=timezone.utc)
    minute = at.hour * 60 + at.minute
    start, end = _minutes(window.start), _minutes(window.end)
    day = WEEKDAYS[at.weekday()]
    if start <= end:
        return (not window.days or day in window.days) and start <= minute < end
    # past midnight: the evening part belongs to a listed day, the morning to the day after
    if minute >= start:
        return not window.days or day in window.days
    yesterday = WEEKDAYS[(at.weekday() - 1) % 7]
    return minute < end and (not window.days or yesterday in window.days)


def in_any(windows: Sequence[WindowSpec], now: float) -> bool:
    return any(in_window(window, now) for window in windows)
