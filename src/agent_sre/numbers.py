"""The gate of every number that comes from outside: configuration, admin bodies, query
parameters and span fields.

A number is accepted when it is finite, not a tiny (denormal) fraction, no larger than any
quantity the daemon deals in, and (a whole number) fits a 64-bit integer, the widest thing it
is stored in. Checks of meaning (above 0, at most 1) stay with each field; this gate is what
every field gets without asking, so a new field cannot miss it: :class:`~agent_sre.section.
Section` runs it on every number of every configuration model (the admin API's rollout
bodies are such models), :func:`number_from_text` reads query parameters and durations with
it, and :func:`checked_number` is what hand-read fields (``POST /v1/throttles``) call.
"""

from __future__ import annotations

import math
import re
from typing import Any

MAX_MAGNITUDE = 1e15
"""The largest magnitude accepted: beyond any count, size, price or duration the daemon
deals in, and small enough that a float still holds every whole number up to it."""
MIN_MAGNITUDE = 1e-12
"""The smallest magnitude other than 0 accepted: below any price, ratio or rate that means
something, and far above denormals (5e-324), which turn divisions into division by zero."""
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_DURATION = 10 * 365 * 86400.0
"""The longest duration accepted, in seconds (ten years)."""
MAX_SPAN_NS = INT64_MAX
"""Span timestamps (nanoseconds since the epoch) are clamped to this: it is what SQLite and
JSON readers hold as a whole number (2^64-1 from a client is a broken clock, not a date)."""
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[+-]?[0-9]+")


class NumberError(ValueError):
    """A number refused at the gate; the message says why, without the field's name (the
    caller puts it in front)."""


def checked_number(value: Any) -> Any:
    """``value`` unchanged when it is no number, or a number the gate accepts.

    Raises:
        NumberError: NaN, an infinity, a magnitude above :data:`MAX_MAGNITUDE`, a fraction
            below :data:`MIN_MAGNITUDE` other than 0, or a whole number past 64 bits.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise NumberError(f"{_short(value)} does not fit a 64-bit integer")
        if abs(value) > MAX_MAGNITUDE:
            raise NumberError(f"{_short(value)} is too large (at most {MAX_MAGNITUDE:g})")
        return value
    if isinstance(value, float):
        if math.isnan(value):
            raise NumberError("NaN is not a number (give a finite number)")
        if math.isinf(value):
            raise NumberError(f"{value!r} is not finite (give a finite number)")
        magnitude = abs(value)
        if magnitude > MAX_MAGNITUDE:
            raise NumberError(f"{value!r} is too large (at most {MAX_MAGNITUDE:g})")
        if 0 < magnitude < MIN_MAGNITUDE:
            raise NumberError(f"{value!r} is too small (0, or at least {MIN_MAGNITUDE:g})")
    return value


def checked_tree(value: Any) -> None:
    """Runs :func:`checked_number` on ``value`` and every number inside its lists, tuples,
    sets and dicts (keys too), walking without recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif isinstance(item, (int, float)):
            checked_number(item)


def number_from_text(text: str, *, integer: bool = False) -> float:
    """A number written as text (a query parameter, a duration's figure): a plain decimal
    the gate accepts.

    Raises:
        NumberError: not a number, or one the gate refuses.
    """
    stripped = text.strip()
    if len(stripped) > 40:
        raise NumberError(f"{stripped[:20]!r}... is not a number we accept (too many digits)")
    if (_INTEGER if integer else _DECIMAL).fullmatch(stripped) is None:
        whole = "a whole number" if integer else "a number"
        raise NumberError(f"{stripped!r} is not {whole}")
    value: float = int(stripped) if integer else float(stripped)
    checked_number(value)
    return value


def checked_duration(seconds: float) -> float:
    """``seconds`` when it is a duration the gate accepts (finite, 0 to :data:`MAX_DURATION`).

    Raises:
        NumberError: otherwise.
    """
    if math.isnan(seconds) or math.isinf(seconds):
        raise NumberError(f"{seconds!r} is not a finite duration")
    if seconds < 0:
        raise NumberError(f"{seconds!r} is negative; a duration is >= 0")
    if seconds > MAX_DURATION:
        raise NumberError(f"{seconds:g} seconds is too long (at most ten years)")
    if 0 < seconds < MIN_MAGNITUDE:
        raise NumberError(f"{seconds!r} is too small (0, or at least {MIN_MAGNITUDE:g})")
    return seconds


def clamp_span_ns(value: int) -> int:
    """A span timestamp clamped to what can be stored (:data:`MAX_SPAN_NS`)."""
    return value if value <= MAX_SPAN_NS else MAX_SPAN_NS


def _short(value: object) -> str:
    if isinstance(value, int) and value.bit_length() > 256:
        return f"a whole number of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = str(value)
    return text if len(text) <= 24 else f"{text[:10]}...{text[-6:]} ({len(text)} digits)"
