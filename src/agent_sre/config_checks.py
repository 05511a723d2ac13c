"""Checks of the configuration that span several fields: listeners' ports, proxy route names
and prefixes, and the gRPC metadata sent upstream.

Each check returns ``(location, message)`` pairs; :mod:`agent_sre.config` turns them into
``file:line: dotted.field: message`` like every other problem. Nothing here does I/O (the
checks that look at the file system run in the daemon, before it starts).
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

from agent_sre.delivery.spec import rollout_problems
from agent_sre.incidents.checks import incident_problems
from agent_sre.units import parse_endpoint

if TYPE_CHECKING:
    from collections.abc import Iterator

    from agent_sre.config import Config

Location = tuple[str | int, ...]
Problem = tuple[Location, str]

_METADATA_KEY = re.compile(r"[0-9a-z_.-]+")
_GRPC_OWN_HEADERS = frozenset({"te", "content-type", "user-agent"})
_WILDCARDS = frozenset({"", "0.0.0.0", "::", "*"})


def config_problems(config: Config) -> list[Problem]:
    """Every cross-field problem of a validated configuration, in file order."""
    from agent_sre.certification.checks import certification_problems
    from agent_sre.chaos.checks import chaos_problems

    return [
        *_port_problems(config),
        *_route_problems(config),
        *_header_problems(config),
        *rollout_problems(config),
        *incident_problems(config),
        *chaos_problems(config),
        *certification_problems(config),
    ]


def _listeners(config: Config) -> Iterator[tuple[Location, str]]:
    otlp = config.receivers.otlp
    if otlp.grpc is not None:
        yield ("receivers", "otlp", "grpc", "endpoint"), otlp.grpc.endpoint
    if otlp.http is not None:
        yield ("receivers", "otlp", "http", "endpoint"), otlp.http.endpoint
    yield ("exporters", "prometheus", "endpoint"), config.exporters.prometheus.endpoint
    yield ("proxy", "endpoint"), config.proxy.endpoint
    yield ("admin", "endpoint"), config.admin.endpoint


def _port_problems(config: Config) -> Iterator[Problem]:
    bound: list[tuple[Location, str, int]] = []
    for loc, endpoint in _listeners(config):
        host, port = parse_endpoint(endpoint)
        for other_loc, other_host, other_port in bound:
            if port != 0 and port == other_port and _hosts_overlap(host, other_host):
                yield (
                    loc,
                    f"port {port} is already {_dotted(other_loc)}'s "
                    "(each listener needs its own port; 0 picks a free one)",
                )
                break
        bound.append((loc, host, port))


def _hosts_overlap(a: str, b: str) -> bool:
    """Whether two listeners on one port would collide: the same address, a wildcard, or a
    name (which may resolve to the other)."""
    a, b = a.lower(), b.lower()
    if a == b or a in _WILDCARDS or b in _WILDCARDS:
        return True
    try:
        ipaddress.ip_address(a)
        ipaddress.ip_address(b)
    except ValueError:
        return True
    return False


def normalized_prefix(prefix: str) -> str:
    """The path prefix a route matches, as the proxy compares it (``/openai/`` -> ``/openai``)."""
    return "/" + prefix.strip("/")


def _route_problems(config: Config) -> Iterator[Problem]:
    names: dict[str, int] = {}
    prefixes: dict[str, int] = {}
    for index, route in enumerate(config.proxy.routes):
        if route.name in names:
            yield (
                ("proxy", "routes", index, "name"),
                f"{route.name!r} is already the name of proxy.routes[{names[route.name]}]",
            )
        names.setdefault(route.name, index)
        prefix = normalized_prefix(route.prefix)
        if prefix in prefixes:
            yield (
                ("proxy", "routes", index, "prefix"),
                f"{prefix!r} is already the prefix of proxy.routes[{prefixes[prefix]}]",
            )
        prefixes.setdefault(prefix, index)


def _header_problems(config: Config) -> Iterator[Problem]:
    seen: dict[str, str] = {}
    for key, value in config.exporters.otlp.headers.items():
        loc: Location = ("exporters", "otlp", "headers", key)
        message = metadata_key_problem(key) or metadata_value_problem(value)
        if message is None and key.lower() in seen:
            message = f"the same header as {seen[key.lower()]!r} (names are case-insensitive)"
        if message is not None:
            yield loc, message
        seen.setdefault(key.lower(), key)


def metadata_key_problem(key: str) -> str | None:
    """Why gRPC would refuse (or silently drop) ``key`` as call metadata; None when fine.

    The exporter sends keys lowercased; gRPC accepts only ``[0-9a-z_.-]``, reserves
    ``grpc-*`` and sets ``te``, ``content-type`` and ``user-agent`` itself; ``-bin`` keys
    carry bytes, which a text value in YAML cannot give.
    """
    name = key.lower()
    if not _METADATA_KEY.fullmatch(name):
        return "not a valid gRPC metadata name (letters, digits, '-', '_' and '.' only)"
    if name.startswith("grpc-"):
        return "names starting with 'grpc-' are reserved by gRPC"
    if name in _GRPC_OWN_HEADERS:
        return "gRPC sets this header itself (a value here would be dropped)"
    if name.endswith("-bin"):
        return "'-bin' names carry binary values, which the configuration cannot give"
    return None


def metadata_value_problem(value: str) -> str | None:
    """Why gRPC would refuse ``value`` as a text metadata value; None when fine. The value
    itself is never repeated: it is often a credential."""
    for position, char in enumerate(value):
        if not " " <= char <= "~":
            what = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab"}.get(
                char, f"character U+{ord(char):04X}"
            )
            return (
                f"the value has {what} at position {position}; gRPC accepts printable "
                "ASCII only (a variable read from a file often ends with a newline)"
            )
    return None


def _dotted(loc: Location) -> str:
    return ".".join(str(part) for part in loc)
