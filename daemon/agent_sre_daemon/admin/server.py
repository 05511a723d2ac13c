"""The admin API (default 127.0.0.1:8791): JSON under ``/v1/...``.

Every change needs ``Authorization: Bearer <admin.token>``; with no token configured every
change is refused. Reads are open to clients on loopback that name a loopback host (a page
in a browser on the node cannot read through DNS rebinding); from anywhere else a read needs
the token too. Private reads (captured bodies, replay session header values: routes marked
with :func:`~agent_sre_daemon.admin.access.private_read`) need the token from anywhere.
The status page's own files (``/``, ``/ui/...``: no data of the node, see
:mod:`agent_sre_daemon.statuspage`) are read by any client, GET and HEAD only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from aiohttp import web

from agent_sre_daemon.admin.access import is_private, is_public
from agent_sre_daemon.admin.inputs import MAX_BODY_BYTES
from agent_sre_daemon.component import Component, Prepared
from agent_sre_daemon.errors import admin_error
from agent_sre_daemon.http_site import start_site
from agent_sre_daemon.statuspage import page_routes

if TYPE_CHECKING:
    from aiohttp.typedefs import Handler

    from agent_sre.config import Config
    from agent_sre_daemon.component import NodeContext

StatusProvider = Callable[[], dict[str, Any]]
Reloader = Callable[[], Awaitable[tuple[bool, str]]]

_READS = ("GET", "HEAD", "OPTIONS")
PRIVATE_READ = " (captured bodies and replay sessions are read with the admin token only)"
PRIVATE_READS_DISABLED = (
    "captured bodies and replay sessions are read with the admin token only, and none is"
    " configured (admin.token)"
)
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


class AdminServer(Component):
    """Serves the node's routes (status, reload) and every component's routes."""

    name: ClassVar[str] = "admin"

    def __init__(
        self,
        context: NodeContext,
        status: StatusProvider,
        reload: Reloader,
        routes: Callable[[], Iterable[web.RouteDef]] = tuple,
    ) -> None:
        self.context = context
        self.status_of_node = status
        self.reload = reload
        self.routes = routes
        """The other components' routes, gathered when the server starts."""
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[self._auth, _unrouted])
        app.router.add_get("/v1/status", self._status)
        app.router.add_post("/v1/reload", self._reload)
        app.router.add_routes(list(self.routes()))
        app.router.add_routes(page_routes())
        return app

    async def start(self) -> dict[str, str]:
        self._runner, address = await start_site(
            self.app(),
            self.context.config.admin.endpoint,
            listener="admin",
            limits=self.context.listeners,
        )
        return {"admin": address}

    async def stop(self, deadline: float) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def prepare_reload(self, new: Config) -> Prepared:
        changed = new.admin.endpoint != self.context.config.admin.endpoint
        return Prepared(needs_restart=["admin.endpoint"] if changed else [])

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        private = is_private(request)
        if request.method in ("GET", "HEAD") and is_public(request):
            return await handler(request)
        if request.method in _READS and not private and _local_read(request):
            return await handler(request)
        token = self.context.config.admin.token
        if not token:
            if request.method in _READS:
                return admin_error(
                    403,
                    "reads_disabled",
                    PRIVATE_READS_DISABLED
                    if private
                    else "reads from beyond loopback need an admin token (admin.token)",
                )
            return admin_error(
                403,
                "changes_disabled",
                "no admin token is configured (admin.token); changes are refused",
            )
        supplied = request.headers.get("Authorization", "")
        if not hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode()):
            return admin_error(
                401,
                "unauthorized",
                "a valid 'Authorization: Bearer <token>' is required"
                + (PRIVATE_READ if private else ""),
            )
        return await handler(request)

    async def _status(self, request: web.Request) -> web.Response:
        answer = self.status_of_node()
        config = answer.get("config")
        if isinstance(config, dict) and config.get("path"):
            # what the file holds now (a mounted ConfigMap changes under the daemon): the
            # operator asks for a reload once it holds what it wrote
            config["file_sha256"] = await asyncio.to_thread(_file_digest, config["path"])
        return web.json_response(answer)

    async def _reload(self, request: web.Request) -> web.Response:
        ok, message = await self.reload()
        if ok:
            return web.json_response({"reloaded": True, "message": message})
        return admin_error(400, "invalid_config", message)


def _file_digest(path: str) -> str | None:
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    return hashlib.sha256(data).hexdigest()


def _local_read(request: web.Request) -> bool:
    """A read from a loopback peer that names a loopback host."""
    peer = request.remote or ""
    try:
        if not ipaddress.ip_address(peer).is_loopback:
            return False
    except ValueError:
        return False
    host = request.host.lower()
    if host.startswith("["):
        host = host.partition("]")[0] + "]"
    else:
        host = host.rpartition(":")[0] if host.count(":") == 1 else host
    return host in LOOPBACK_NAMES or host.endswith(".localhost")


@web.middleware
async def _unrouted(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own answer to a path no route serves (plain text) in the admin API's error
    shape: 404 ``route_not_found`` or 405 ``method_not_allowed`` (with ``Allow``)."""
    unmatched = request.match_info.http_exception
    if unmatched is None:
        return await handler(request)
    path = request.path if len(request.path) <= 200 else request.path[:200] + "..."
    if isinstance(unmatched, web.HTTPMethodNotAllowed):
        response = admin_error(
            405, "method_not_allowed", f"{request.method[:20]} is not served at {path}"
        )
        response.headers["Allow"] = ", ".join(sorted(unmatched.allowed_methods))
        return response
    return admin_error(404, "route_not_found", f"no admin route serves {path}")
