"""The Prometheus endpoint (default 127.0.0.1:9464): ``/metrics``, ``/healthz``, ``/readyz``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agent_sre_daemon.http_site import start_site

if TYPE_CHECKING:
    from collections.abc import Callable

    from prometheus_client import CollectorRegistry


class MetricsServer:
    """Serves the registry and the health endpoints.

    Args:
        registry: what ``/metrics`` exposes.
        ready: whether every listener is up and intake is open (``/readyz``).
        before_scrape: refreshes gauges computed on demand (queue age, SLO state).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        endpoint: str,
        ready: Callable[[], bool],
        before_scrape: Callable[[], None] = lambda: None,
    ) -> None:
        self.registry = registry
        self.endpoint = endpoint
        self.ready = ready
        self.before_scrape = before_scrape
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner, address = await start_site(app, self.endpoint)
        return address

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        self.before_scrape()
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        if self.ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")
