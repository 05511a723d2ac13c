"""SLO and alert windows: what the buckets can sum exactly, written so a JSON Schema can say it.

A window is counted in 1-minute buckets up to 6h and in 1-hour buckets beyond, so an alert
window is a whole number of minutes (at least 1m) and, over 6h, of hours; an SLO window is a
whole number of hours from 1h to 366d. As a number of seconds any such value is accepted. As a
string, a window is written in whole units, largest first, each at most once: ``5m``,
``1h30m``, ``90m``, ``6h``, ``3d``, ``1w2d`` (an SLO window in one unit: ``28d``, ``2w``,
``36h``). That grammar is a regular language, so the configuration's JSON Schema (and the
Helm chart's, generated from it) accepts exactly the windows the daemon accepts: ``90s``,
``1.5h`` or ``6h30m`` are refused by both, each with the form to write instead. The rules
that compare two fields (``short`` under ``long``, ``long`` within the SLO window) are the
model's (:mod:`agent_sre.slo.spec`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

from agent_sre.units import format_duration, parse_duration

MINUTE = 60.0
HOUR = 3600.0
FINE_SPAN = 6 * HOUR
"""Windows up to this long are counted in 1-minute buckets; longer ones in 1-hour buckets."""
MAX_WINDOW = 366 * 86400.0

_N = "[1-9][0-9]*"
_WHOLE_HOURS = f"(?:{_N}w(?:{_N}d)?(?:{_N}h)?|{_N}d(?:{_N}h)?|{_N}h)"
# minutes that are not whole hours: at most 6h in all (5h59m), or 60m-360m written alone
_MINUTES = "(?:(?:[1-5]h)?(?:[1-9]|[1-5][0-9])m|(?:[6-9][0-9]|[12][0-9]{2}|3[0-5][0-9]|360)m)"
ALERT_WINDOW_PATTERN = f"^(?:{_WHOLE_HOURS}|{_MINUTES})$"
"""Every string form of an alert window the daemon accepts (Python ``re`` and RE2 alike)."""
SLO_WINDOW_PATTERN = (
    "^(?:(?:[1-9]|[1-4][0-9]|5[0-2])w"
    "|(?:[1-9][0-9]?|[12][0-9]{2}|3[0-5][0-9]|36[0-6])d"
    "|(?:[1-9][0-9]{0,2}|[1-7][0-9]{3}|8[0-6][0-9]{2}|87[0-7][0-9]|878[0-4])h)$"
)
"""Every string form of an SLO window: one unit, 1h to 366d (52w, 366d, 8784h at most)."""
_ALERT_WINDOW = re.compile(ALERT_WINDOW_PATTERN)
_SLO_WINDOW = re.compile(SLO_WINDOW_PATTERN)

ALERT_WINDOW_JSON_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {
            "type": "number",
            "minimum": MINUTE,
            "maximum": MAX_WINDOW,  # no alert window outlives its SLO window (366d at most)
            "multipleOf": 60,
            "if": {"exclusiveMinimum": FINE_SPAN},
            "then": {"multipleOf": 3600},
        },
        {"type": "string", "pattern": ALERT_WINDOW_PATTERN},
    ],
    "description": "An alert window: whole minutes (at least 1m), whole hours over 6h, "
    "written as 5m, 90m, 1h30m, 6h, 3d or a number of seconds.",
}
SLO_WINDOW_JSON_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "minimum": HOUR, "maximum": MAX_WINDOW, "multipleOf": 3600},
        {"type": "string", "pattern": SLO_WINDOW_PATTERN},
    ],
    "description": "An SLO window: whole hours from 1h to 366d, written in one unit (28d, 2w, "
    "36h) or as a number of seconds.",
}


def check_window(seconds: float) -> float:
    """Accepts a window the buckets can sum exactly: whole minutes up to 6h, else whole hours.

    Raises:
        ValueError: naming the rule that was broken.
    """
    if seconds < MINUTE or seconds % MINUTE:
        raise ValueError(f"{format_duration(seconds)}: must be a whole number of minutes >= 1m")
    if seconds > FINE_SPAN and seconds % HOUR:
        raise ValueError(
            f"{format_duration(seconds)}: windows over 6h must be a whole number of hours"
        )
    return seconds


def check_slo_window(seconds: float) -> float:
    """Accepts an SLO window: whole hours from 1h to 366d.

    Raises:
        ValueError: naming the rule that was broken.
    """
    if seconds < HOUR or seconds % HOUR:
        raise ValueError(f"{format_duration(seconds)}: must be a whole number of hours >= 1h")
    if seconds > MAX_WINDOW:
        raise ValueError(f"{format_duration(seconds)}: must be at most 366d")
    return seconds


def parse_alert_window(value: object) -> float:
    """Seconds of an alert window (``long``, ``short``).

    Raises:
        ValueError: not a duration, breaks a rule of the buckets, or a string not written in
            whole units largest first (the message gives the form to write).
    """
    seconds = check_window(parse_duration(value))
    if isinstance(value, (int, float)) and seconds > MAX_WINDOW:
        # beyond any SLO window (the schema's bound, and where a float stops being exact)
        raise ValueError(f"{format_duration(seconds)}: no alert window is longer than 366d")
    if isinstance(value, str) and _ALERT_WINDOW.search(value) is None:
        raise ValueError(f"{value.strip()!r}: write this window as {format_window(seconds)}")
    return seconds


def parse_slo_window(value: object) -> float:
    """Seconds of an SLO window.

    Raises:
        ValueError: as :func:`parse_alert_window`, for an SLO window's rules.
    """
    seconds = check_slo_window(parse_duration(value))
    if isinstance(value, str) and _SLO_WINDOW.search(value) is None:
        raise ValueError(
            f"{value.strip()!r}: write an SLO window in one unit, as {format_duration(seconds)}"
        )
    return seconds


def format_window(seconds: float) -> str:
    """The form :data:`ALERT_WINDOW_PATTERN` takes for a valid alert window (``1h30m``,
    ``1w2d``)."""
    whole = int(seconds)
    if whole % 3600:
        hours, minutes = divmod(whole // 60, 60)
        return f"{hours}h{minutes}m" if hours else f"{minutes}m"
    parts = []
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


AlertWindow = Annotated[
    float, BeforeValidator(parse_alert_window), WithJsonSchema(ALERT_WINDOW_JSON_SCHEMA)
]
"""Seconds of a burn-rate alert window; the JSON Schema says exactly what is accepted."""
SLOWindow = Annotated[
    float, BeforeValidator(parse_slo_window), WithJsonSchema(SLO_WINDOW_JSON_SCHEMA)
]
"""Seconds of an SLO window; the JSON Schema says exactly what is accepted."""
