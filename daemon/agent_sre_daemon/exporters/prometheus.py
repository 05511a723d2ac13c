"""The Prometheus endpoint (default 127.0.0.1:9464): ``/metrics``, ``/healthz``, ``/readyz``."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agent_sre_daemon.component import Component, Prepared
from agent_sre_daemon.exporters.process import ProcessMetrics, register_process_metrics
from agent_sre_daemon.http_site import start_site

if TYPE_CHECKING:
    from collections.abc import Callable

    from prometheus_client import CollectorRegistry

    from agent_sre.config import Config
    from agent_sre_daemon.component import NodeContext


class MetricsServer(Component):
    """Serves the registry and the health endpoints, and adds the daemon's own process
    figures (``process_*``, ``python_*``) to the registry.

    Args:
        context: the node's context (the registry ``/metrics`` exposes).
        ready: whether every listener is up and intake is open (``/readyz``).
    """

    name: ClassVar[str] = "metrics"
    title: ClassVar[str] = "Process (the daemon itself)"

    def __init__(self, context: NodeContext, ready: Callable[[], bool]) -> None:
        self.context = context
        self.register_metrics(context.registry)
        self.ready = ready
        self._runner: web.AppRunner | None = None

    @classmethod
    def register_metrics(cls, registry: CollectorRegistry) -> ProcessMetrics:
        return register_process_metrics(registry)

    async def start(self) -> dict[str, str]:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner, address = await start_site(
            app,
            self.context.config.exporters.prometheus.endpoint,
            listener="metrics",
            limits=self.context.listeners,
        )
        return {"metrics": address}

    async def stop(self, deadline: float) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def prepare_reload(self, new: Config) -> Prepared:
        changed = new.exporters.prometheus != self.context.config.exporters.prometheus
        return Prepared(needs_restart=["exporters.prometheus"] if changed else [])

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.context.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        if self.ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")
