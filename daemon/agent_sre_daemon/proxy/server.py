"""The proxy's lifecycle: build from config, listen, drain, close.

Integration contract with the node::

    server = ProxyServer(config, span_sink, registry, state_dir)
    host, port = await server.start()      # binds config.proxy.endpoint (port 0: a free one)
    admin_app.add_routes(server.admin_routes())
    ...
    await server.stop()                    # stop accepting, finish in-flight, settle, close
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import TYPE_CHECKING, ClassVar

import aiohttp
from aiohttp import web

from agent_sre.cost.pricing import Pricer
from agent_sre.units import parse_endpoint
from agent_sre_daemon.component import Component, Prepared
from agent_sre_daemon.proxy.admin import admin_routes
from agent_sre_daemon.proxy.call import MAX_REQUEST_BYTES, Forwarder, make_route
from agent_sre_daemon.proxy.errors import refuse_unrouted
from agent_sre_daemon.proxy.gate import BudgetGate
from agent_sre_daemon.proxy.metrics import ProxyMetrics

if TYPE_CHECKING:
    from pathlib import Path

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from prometheus_client import CollectorRegistry

    from agent_sre.config import Config
    from agent_sre_daemon.component import NodeContext
    from agent_sre_daemon.stores.ledger import LedgerStore

log = logging.getLogger("agent_sre.proxy")

LEDGER_FILE = "ledger.sqlite"


class ProxyServer(Component):
    """The LLM and tool reverse proxy with the cost guard inline."""

    name: ClassVar[str] = "proxy"
    title: ClassVar[str] = "Proxy and cost guard"

    @classmethod
    def register_metrics(cls, registry: CollectorRegistry) -> ProxyMetrics:
        return ProxyMetrics(registry)

    def __init__(
        self,
        context: NodeContext,
        *,
        shutdown_timeout: float = 30.0,
    ) -> None:
        config = context.config
        state_dir = context.state_dir
        self.context = context
        self.config = config
        self.node = config.node.name or socket.gethostname()
        self.metrics = ProxyMetrics(context.registry)
        self.pricer = Pricer(config.budgets.price_overrides)
        self.store = _ledger_store(config, state_dir)
        self.gate = BudgetGate(config.budgets, self.store, self.pricer, self.metrics, self.node)
        if hasattr(self.store, "on_error"):
            self.store.on_error = self.gate.store_error
        self._span_sink = self._proxy_span
        self._shutdown_timeout = shutdown_timeout
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._forwarder: Forwarder | None = None

    def _proxy_span(self, request: ExportTraceServiceRequest) -> None:
        """The spans of proxied calls join the received ones (SLIs, queue, upstream), after
        meeting the agents' own spans of the same calls (one call, one event)."""
        self.context.pipeline.export_proxy_call(request)

    async def start(self) -> dict[str, str]:
        host, port = await self.start_listening()
        return {"proxy": f"{host}:{port}"}

    async def prepare_reload(self, new: Config) -> Prepared:
        async def commit() -> None:
            self._restart_needed = self.reload(new)

        restart = []
        if new.proxy.endpoint != self.config.proxy.endpoint:
            restart.append("proxy.endpoint")
        store_keys = ("store", "redis_url", "redis_prefix", "on_store_error")
        if any(getattr(new.budgets, k) != getattr(self.config.budgets, k) for k in store_keys):
            restart.append("budgets.store")
        return Prepared(needs_restart=restart, commit=commit)

    async def start_listening(self) -> tuple[str, int]:
        """Opens the ledger and binds ``proxy.endpoint``; returns the bound (host, port)."""
        await self.gate.open()
        connector = aiohttp.TCPConnector(
            limit=0, limit_per_host=0, ttl_dns_cache=300, enable_cleanup_closed=True
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )
        routes = [make_route(route, dict(os.environ)) for route in self.config.proxy.routes]
        self._forwarder = Forwarder(
            routes,
            self._session,
            self.gate,
            self.pricer,
            self.metrics,
            self._span_sink,
            {"service.name": "agent-sre-proxy", "agent_sre.node": self.node},
        )
        app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[refuse_unrouted])
        app.router.add_route("*", "/{tail:.*}", self._forwarder.handle)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=self._shutdown_timeout
        )
        await self._runner.setup()
        host, port = parse_endpoint(self.config.proxy.endpoint)
        site = web.TCPSite(self._runner, host, port, backlog=1024, reuse_address=True)
        await site.start()
        bound = _bound_address(site, host)
        log.info("proxy listening on %s:%d (%d routes)", bound[0], bound[1], len(routes))
        return bound

    async def stop(self, deadline: float | None = None) -> None:
        """Stops accepting, lets calls in flight finish, settles them, closes the ledger."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._forwarder is not None and self._forwarder.background:
            await asyncio.wait(set(self._forwarder.background), timeout=self._shutdown_timeout)
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.store.close()

    def reload(self, config: Config) -> list[str]:
        """Applies changed routes, budgets, rate limits and prices at once; returns what
        only a restart can change (the listener, the ledger's store)."""
        old = self.config
        restart = []
        if config.proxy.endpoint != old.proxy.endpoint:
            restart.append("proxy.endpoint")
        store_keys = ("store", "redis_url", "redis_prefix", "on_store_error")
        if any(getattr(config.budgets, k) != getattr(old.budgets, k) for k in store_keys):
            restart.append("budgets.store")
        if config.proxy.routes != old.proxy.routes or config.budgets != old.budgets:
            self.pricer = Pricer(config.budgets.price_overrides)
            self.gate.reload(config.budgets, self.pricer)
            if self._forwarder is not None:
                routes = [make_route(route, dict(os.environ)) for route in config.proxy.routes]
                self._forwarder.reload(routes, self.pricer)
        self.config = config
        return restart

    def admin_routes(self) -> list[web.RouteDef]:
        """``GET /v1/budgets``, ``GET /v1/agents``, ``POST /v1/agents/{id}/block|unblock``."""
        return admin_routes(self.gate, time.time)


def _ledger_store(config: Config, state_dir: Path) -> LedgerStore:
    budgets = config.budgets
    if budgets.store == "redis":
        from agent_sre_daemon.stores.ledger_redis import RedisLedgerStore

        return RedisLedgerStore(budgets.redis_url, budgets.redis_prefix, budgets.on_store_error)
    from agent_sre_daemon.stores.ledger_sqlite import SqliteLedgerStore

    return SqliteLedgerStore(state_dir / LEDGER_FILE)


def _bound_address(site: web.TCPSite, host: str) -> tuple[str, int]:
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    if not sockets:
        raise RuntimeError("proxy did not bind")
    name = sockets[0].getsockname()
    return str(name[0]), int(name[1])
