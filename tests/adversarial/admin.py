"""Talking to a running daemon's admin API, and listing its routes the way the daemon builds
them (so a route added later is driven by the property tests too)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from agent_sre.config import Config

if TYPE_CHECKING:
    from tests.support.daemon import DaemonProcess

TOKEN = "tok"
TRACE_ID = "0" * 31 + "1"


def strict_json(data: bytes) -> Any:
    """JSON as RFC 8259 has it: ``NaN`` and ``Infinity`` are not numbers."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} in an answer is not JSON")

    return json.loads(data, parse_constant=refuse)


def send(
    daemon: DaemonProcess,
    method: str,
    path: str,
    body: Any = None,
    raw: bytes | None = None,
    token: str | None = TOKEN,
    timeout: float = 30,
) -> tuple[int, bytes]:
    """``(status, body bytes)`` of one admin request (a JSON ``body`` or ``raw`` bytes)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        daemon.url("admin", path), data=data, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def routes(config: dict[str, Any]) -> list[tuple[str, str]]:
    """``(method, path)`` of every JSON route of the admin API (``/v1/...``) a daemon with
    ``config`` serves, as the composition root builds them (path parameters filled in).
    The status page's own files are :func:`page_routes`; no route is in neither."""
    return [(method, path) for method, path in all_routes(config) if path.startswith("/v1/")]


def page_routes(config: dict[str, Any]) -> list[tuple[str, str]]:
    """``(method, path)`` of the status page's routes (HTML, CSS, JavaScript)."""
    return [(method, path) for method, path in all_routes(config) if not path.startswith("/v1/")]


def all_routes(config: dict[str, Any]) -> list[tuple[str, str]]:
    """``(method, path)`` of every route of the admin listener."""
    from agent_sre_daemon.admin.server import AdminServer
    from agent_sre_daemon.node import Node

    node = Node(Config.model_validate(config), environ={})
    admin = next(c for c in node.components if isinstance(c, AdminServer))
    found = []
    for resource in admin.app().router.resources():
        info = resource.get_info()
        template = info.get("formatter") or info.get("path") or ""
        path = template.format_map(_Fill())
        for route in resource:
            if route.method != "HEAD":
                found.append((route.method, path))
    return sorted(set(found))


class _Fill(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return TRACE_ID if key == "trace_id" else "x"
