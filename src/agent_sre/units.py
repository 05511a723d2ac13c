"""Parsing of the human units used in configuration: durations, sizes and endpoints."""

from __future__ import annotations

import re

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(value: object) -> float:
    """Returns seconds for ``5m``, ``1h30m``, ``28d``, ``250ms`` or a plain number of seconds.

    Raises:
        ValueError: with a message that shows the accepted forms.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration (use 30d, 6h, 5m, 10s, 250ms)")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{value!r} is negative; a duration is >= 0")
        return float(value)
    text = str(value).strip()
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"{text!r} is not a duration (use 30d, 6h, 5m, 10s, 250ms)")
    return total


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
