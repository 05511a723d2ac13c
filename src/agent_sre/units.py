"""Parsing of the human units used in configuration: durations, sizes and endpoints."""

from __future__ import annotations

import math
import re

from agent_sre.numbers import MAX_DURATION, NumberError, checked_duration

DURATION_PATTERN = r"^\s*([0-9]+(\.[0-9]+)?(ms|s|m|h|d|w))+\s*$"
"""Every duration string :func:`parse_duration` accepts, and only those (the JSON Schema
uses this pattern too)."""
_DURATION = re.compile(DURATION_PATTERN)
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
MAX_DURATION_TEXT = 64
"""A duration written longer than this is refused before it is read."""
_FORMS = "use 30d, 6h, 5m, 10s, 250ms, 1h30m, 1.5s or a number of seconds"


def parse_duration(value: object) -> float:
    """Returns seconds for ``5m``, ``1h30m``, ``28d``, ``250ms``, ``1.5s`` or a plain number
    of seconds; both forms pass the numbers gate (finite, at most ten years:
    :func:`~agent_sre.numbers.checked_duration`).

    Raises:
        ValueError: with a message that shows the accepted forms.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration ({_FORMS})")
    if isinstance(value, int) and abs(value) > MAX_DURATION:
        raise NumberError("that many seconds is too long (at most ten years)")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a duration ({_FORMS})")
        return checked_duration(float(value))
    text = str(value)
    if len(text) > MAX_DURATION_TEXT or _DURATION.fullmatch(text) is None:
        shown = text.strip() if len(text) <= MAX_DURATION_TEXT else text.strip()[:20] + "..."
        raise ValueError(f"{shown!r} is not a duration ({_FORMS})")
    return checked_duration(
        sum(float(number) * _SECONDS[unit] for number, unit in _PART.findall(text))
    )


def format_duration(seconds: float) -> str:
    """Returns the shortest exact form of ``seconds`` among d, h, m, s (``2h``, ``90s``)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds}s"


def parse_endpoint(value: str) -> tuple[str, int]:
    """Splits ``host:port`` (``[::1]:4317`` for IPv6) into host and port.

    Raises:
        ValueError: when the port is missing or out of range.
    """
    text = value.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{value!r} is not host:port (for example 127.0.0.1:4317)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{value!r} has no valid port (0-65535; 0 picks a free one)")
    return host, int(port_text)
