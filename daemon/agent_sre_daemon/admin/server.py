"""The admin API (default 127.0.0.1:8791): JSON under ``/v1/...``.

Reads are open; every change needs ``Authorization: Bearer <admin.token>``, and with no
token configured every change is refused.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from agent_sre_daemon.http_site import start_site

if TYPE_CHECKING:
    from aiohttp.typedefs import Handler

StatusProvider = Callable[[], dict[str, Any]]
Reloader = Callable[[], Awaitable[tuple[bool, str]]]


def json_error(status: int, type_: str, message: str) -> web.Response:
    return web.json_response({"error": {"type": type_, "message": message}}, status=status)


class AdminServer:
    """Serves the admin routes; other components add theirs through ``extra_routes``."""

    def __init__(
        self,
        endpoint: str,
        token: Callable[[], str],
        status: StatusProvider,
        reload: Reloader,
        extra_routes: Iterable[web.RouteDef] = (),
    ) -> None:
        self.endpoint = endpoint
        self.token = token
        self.status = status
        self.reload = reload
        self.extra_routes = list(extra_routes)
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/v1/status", self._status)
        app.router.add_post("/v1/reload", self._reload)
        app.router.add_routes(self.extra_routes)
        return app

    async def start(self) -> str:
        self._runner, address = await start_site(self.app(), self.endpoint)
        return address

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return await handler(request)
        token = self.token()
        if not token:
            return json_error(
                403,
                "changes_disabled",
                "no admin token is configured (admin.token); changes are refused",
            )
        supplied = request.headers.get("Authorization", "")
        if not hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode()):
            return json_error(
                401, "unauthorized", "a valid 'Authorization: Bearer <token>' is required"
            )
        return await handler(request)

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self.status())

    async def _reload(self, request: web.Request) -> web.Response:
        ok, message = await self.reload()
        if ok:
            return web.json_response({"reloaded": True, "message": message})
        return json_error(400, "invalid_config", message)
