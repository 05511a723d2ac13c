"""The proxy component: build from config, listen, drain, close.

A request is matched to a route (or refused: no open proxy), read once into its provider's
plan, and passed through the chain of stages (:mod:`agent_sre_daemon.proxy.call`):
record -> identity -> admission -> routing -> [faults, capture: other components] ->
settle -> upstream. Spans of proxied calls join the received ones in the node's pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from typing import TYPE_CHECKING, Any, ClassVar

import aiohttp
from aiohttp import web

from agent_sre.cost.pricing import Pricer
from agent_sre.gateway.agent_keys import AgentKeys
from agent_sre.gateway.identity import trace_context
from agent_sre.gateway.paths import PathError, canonical_path
from agent_sre.gateway.providers import plan_call
from agent_sre.replay.redaction import Redactor
from agent_sre.units import parse_endpoint
from agent_sre_daemon import http_site
from agent_sre_daemon.component import Component, Prepared, ReloadError, cancel_tasks
from agent_sre_daemon.errors import NOT_AN_OPEN_PROXY, proxy_error
from agent_sre_daemon.http_site import PARSE_OFF_LOOP_BYTES, GuardedSite, runner_kwargs
from agent_sre_daemon.proxy.admin import admin_routes
from agent_sre_daemon.proxy.call import AfterAnswer, Call, Chain
from agent_sre_daemon.proxy.gate import BudgetGate
from agent_sre_daemon.proxy.metrics import ProxyMetrics
from agent_sre_daemon.proxy.routes import RouteTable, make_route
from agent_sre_daemon.proxy.spans import build_request, new_record, redact_record, resource_of
from agent_sre_daemon.proxy.stages.admission import AdmissionStage
from agent_sre_daemon.proxy.stages.delegation import DelegationHeaders, DelegationStage
from agent_sre_daemon.proxy.stages.identity import IdentityStage, new_ids
from agent_sre_daemon.proxy.stages.record import RecordStage
from agent_sre_daemon.proxy.stages.routing import RoutingStage
from agent_sre_daemon.proxy.stages.settle import SettleStage
from agent_sre_daemon.proxy.stages.upstream import UpstreamStage

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from prometheus_client import CollectorRegistry

    from agent_sre.bounded import OnEvict
    from agent_sre.config import Config
    from agent_sre.gateway.identity import TraceContext
    from agent_sre_daemon.component import NodeContext
    from agent_sre_daemon.proxy.spans import CallRecord
    from agent_sre_daemon.proxy.stage import Stage
    from agent_sre_daemon.stores.ledger import LedgerStore

log = logging.getLogger("agent_sre.proxy")

LEDGER_FILE = "ledger.sqlite"
MAX_REQUEST_BYTES = 64 * 1024 * 1024
BODIES_IN_FLIGHT_BYTES = 256 * 1024 * 1024
"""Request bytes the proxy holds at once (read, parsed and forwarded): a body that would take
it past this is refused with 503 and a Retry-After (the SDKs retry it), so concurrent large
bodies cannot take the daemon's memory."""
DRAIN_SECONDS = 30.0
"""How long :meth:`ProxyServer.stop` lets calls in flight finish when given no deadline."""
SETTLE_GRACE = 1.0
"""A call cut at the deadline still settles (a ledger write): at most this much longer."""
_CUT_AFTER = 0.01
"""aiohttp's own wait for handlers at cleanup (0 would mean no limit)."""
_STORE_KEYS = ("store", "redis_url", "redis_prefix", "on_store_error")


BLOCKS_REFRESH_SECONDS = 1.0
"""How often a daemon on a shared (Redis) ledger takes the operator blocks from it."""


class ProxyServer(Component):
    """The LLM and tool reverse proxy with the cost guard inline."""

    name: ClassVar[str] = "proxy"
    title: ClassVar[str] = "Proxy and cost guard"

    def __init__(self, context: NodeContext) -> None:
        self.context = context
        self.config = context.config
        self.clock = context.clock
        self.metrics = self.register_metrics(context.registry)
        self.store = _ledger_store(context, self.metrics.evicted)
        self.gate = BudgetGate(
            self.config.budgets,
            self.store,
            Pricer(self.config.budgets.price_overrides, self.config.proxy.routes),
            self.metrics,
            _node_name(self.config),
            self.clock,
            context.bus,
        )
        context.provide("budgets", self.gate)  # the fleet summary reads the budgets' use
        if hasattr(self.store, "on_error"):
            self.store.on_error = self.gate.store_error
        self._resource = resource_of(_resource_attributes(self.gate.node))
        self._routes = RouteTable(
            [make_route(r, context.environ) for r in self.config.proxy.routes]
        )
        self._agent_keys = AgentKeys(self.config.proxy.agent_keys)
        self._redactor = Redactor(self.config.replay.redaction.patterns)
        self._redactor_patterns = self.config.replay.redaction.patterns
        self._chain: Chain | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._session: aiohttp.ClientSession | None = None
        self._in_flight: set[asyncio.Task[object]] = set()
        self._blocks_task: asyncio.Task[None] | None = None
        self._bodies = BodyRoom(BODIES_IN_FLIGHT_BYTES)
        self._spans_after = AfterAnswer("the span of a proxied call")
        """The spans of answered calls, built and handed on just after their answers."""
        context.register_action("block_agent", self._block_agent)
        context.register_action("unblock_agent", self._unblock_agent)

    @classmethod
    def register_metrics(cls, registry: CollectorRegistry) -> ProxyMetrics:
        return ProxyMetrics(registry)

    # -- life ---------------------------------------------------------------------------

    async def start(self) -> dict[str, str]:
        """Opens the ledger and binds ``proxy.endpoint``; returns ``{"proxy": "host:port"}``."""
        await self.gate.open()
        if self.config.budgets.store == "redis":
            # the kill switch is fleet-wide when the ledger is
            self._blocks_task = asyncio.create_task(self._follow_blocks(), name="proxy-blocks")
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
        clock = self.clock
        self._chain = Chain(
            [
                RecordStage(self.metrics, clock, self._emit),
                IdentityStage(lambda: self._agent_keys, self._redactor_now),
                DelegationStage(),
                AdmissionStage(self.gate, clock),
                RoutingStage(),
                DelegationHeaders(),
                SettleStage(self.gate, clock),
                UpstreamStage(self._session, clock, self.metrics.sse_oversized),
                *self.context.stages,  # gathered by the node from every component
            ]
        )
        app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[_refuse_unrouted])
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # Calls in flight are waited for by stop() itself, against its deadline; what is
        # left then is cut at once.
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            **runner_kwargs({"shutdown_timeout": _CUT_AFTER}),
        )
        await self._runner.setup()
        host, port = parse_endpoint(self.config.proxy.endpoint)
        self._site = GuardedSite(
            self._runner,
            host,
            port,
            backlog=1024,
            reuse_address=True,
            listener="proxy",
            limits=self.context.listeners,
        )
        await self._site.start()
        bound_host, bound_port = _bound_address(self._runner)
        log.info(
            "proxy listening on %s:%d (%d routes, stages: %s)",
            bound_host,
            bound_port,
            len(self._routes.routes),
            " -> ".join(stage.name for stage in self._chain.stages),
        )
        return {"proxy": f"{bound_host}:{bound_port}"}

    async def stop(self, deadline: float | None = None) -> None:
        """Stops accepting, lets calls in flight finish until ``deadline`` (the clock's
        monotonic time; default in :data:`DRAIN_SECONDS`), settles them, closes the ledger."""
        clock = self.clock
        if deadline is None:
            deadline = clock.monotonic() + DRAIN_SECONDS
        await cancel_tasks(self._blocks_task)
        self._blocks_task = None
        if self._site is not None:
            with contextlib.suppress(RuntimeError):  # a site that never bound
                await self._site.stop()  # no new connections
            self._site = None
        if self._in_flight:
            left = max(0.0, deadline - clock.monotonic())
            _, pending = await asyncio.wait(set(self._in_flight), timeout=left)
            if pending:
                log.warning("%d proxied calls still running at the deadline: cut", len(pending))
        if self._runner is not None:
            await self._runner.cleanup()  # closes connections; cancels what is left
            self._runner = None
        if self._chain is not None and self._chain.unwinding:
            # cancelled calls settle in their own tasks: a ledger write each
            await asyncio.wait(set(self._chain.unwinding), timeout=SETTLE_GRACE)
        self._spans_after.run()  # the spans of the last calls, before the pipeline stops
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.gate.close()

    async def prepare_reload(self, new: Config) -> Prepared:
        """Builds new routes, prices and budgets without applying them; spend and operator
        blocks are kept, rate-limit buckets and pacing restart from full."""
        old = self.config
        restart = []
        if new.proxy.endpoint != old.proxy.endpoint:
            restart.append("proxy.endpoint")
        if any(getattr(new.budgets, k) != getattr(old.budgets, k) for k in _STORE_KEYS):
            restart.append("budgets.store")
        node = _node_name(new)
        if (
            new.proxy.routes == old.proxy.routes
            and new.proxy.agent_keys == old.proxy.agent_keys
            and new.budgets == old.budgets
            and node == self.gate.node
        ):
            return Prepared(needs_restart=restart, commit=self._commit_config(new))
        try:
            routes = RouteTable([make_route(r, self.context.environ) for r in new.proxy.routes])
            # the store in use stays until a restart, and says so in GET /v1/budgets
            budgets = new.budgets.model_copy(
                update={key: getattr(old.budgets, key) for key in _STORE_KEYS}
            )
            gate_config = self.gate.prepare(
                budgets, Pricer(budgets.price_overrides, new.proxy.routes), node
            )
            resource = resource_of(_resource_attributes(node))
            agent_keys = AgentKeys(new.proxy.agent_keys)
        except Exception as exc:
            raise ReloadError(f"proxy: {exc}") from exc

        async def commit() -> None:
            self.gate.apply(gate_config)
            self._routes = routes
            self._resource = resource
            self._agent_keys = agent_keys
            self.config = new

        return Prepared(needs_restart=restart, commit=commit)

    def _commit_config(self, new: Config) -> Callable[[], Awaitable[None]]:
        async def commit() -> None:
            self.config = new

        return commit

    @property
    def stages(self) -> list[Stage]:
        """The chain every call passes through, in order (empty before start)."""
        return list(self._chain.stages) if self._chain is not None else []

    def status(self) -> dict[str, Any]:
        return {
            "proxy": {
                "routes": [route.name for route in self._routes.routes],
                "stages": [stage.name for stage in self.stages],
                "calls_in_flight": len(self._in_flight),
            }
        }

    async def _follow_blocks(self) -> None:
        while True:
            await asyncio.sleep(BLOCKS_REFRESH_SECONDS)
            try:
                await self.gate.refresh_blocks()
            except Exception:  # the next round tries again; the last known blocks hold
                log.exception("reading operator blocks from the ledger failed")

    async def _block_agent(self, params: Mapping[str, str]) -> str:
        agent_id = params["agent_id"]
        reason = params.get("reason") or "blocked by an automatic response"
        await self.gate.block(agent_id, reason)
        return f"agent {agent_id} blocked ({reason})"

    async def _unblock_agent(self, params: Mapping[str, str]) -> str:
        agent_id = params["agent_id"]
        was = await self.gate.unblock(agent_id)
        return f"agent {agent_id} unblocked" if was else f"agent {agent_id} was not blocked"

    def admin_routes(self) -> list[web.RouteDef]:
        """``GET /v1/budgets``, ``GET /v1/agents[/blocked]``,
        ``POST /v1/agents/{id}/block|unblock``."""
        return admin_routes(self.gate, self.context.bus, self.clock)

    # -- a call -------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        started = self.clock.monotonic()
        if request.method == "CONNECT" or not request.raw_path.startswith("/"):
            return proxy_error("passthrough", "route_not_found", NOT_AN_OPEN_PROXY, status=400)
        raw, _, query = request.raw_path.partition("?")
        try:
            # one canonical form decides both what the call is and what is forwarded
            path = _canonical(raw)
        except PathError as exc:
            guess = self._routes.match(raw)
            api = guess.config.api if guess is not None else "passthrough"
            return proxy_error(api, "invalid_path", str(exc))
        route = self._routes.match(path)
        if route is None:
            return proxy_error(
                "passthrough", "route_not_found", f"no proxy route for {request.path!r}"
            )
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        held = 0
        try:
            api = route.config.api
            length = request.content_length or 0
            if length > MAX_REQUEST_BYTES:
                return proxy_error(api, "request_too_large", _TOO_LARGE)
            if not self._bodies.take(length):
                return proxy_error(
                    api, "proxy_busy", _BUSY.format(self._bodies.limit), retry_after=1.0
                )
            held = length
            try:  # the body timeout of every listener, answered in the provider's shape
                body = await asyncio.wait_for(self._read(request, length), http_site.BODY_TIMEOUT)
            except asyncio.TimeoutError:
                return _request_timeout(api)
            except web.HTTPRequestEntityTooLarge:
                return proxy_error(api, "request_too_large", _TOO_LARGE)
            except _BusyError:
                return proxy_error(
                    api, "proxy_busy", _BUSY.format(self._bodies.limit), retry_after=1.0
                )
            finally:
                held = max(held, self._bodies.held_by(request))
            rest = path[len(route.prefix) :]
            if len(body) > PARSE_OFF_LOOP_BYTES:
                # plan_call is pure: safe on a worker thread (the GIL is still taken in
                # turns, so the loop stalls in slices, not for the whole parse)
                plan = await asyncio.to_thread(plan_call, route.config, request.method, rest, body)
            else:
                plan = plan_call(route.config, request.method, rest, body)
            if plan.refusal:
                return proxy_error(api, "bad_request", plan.refusal)
            record = new_record(route.name, plan, request.method, int(self.clock.time() * 1e9))
            call = Call(request, route, rest, query, plan, started, record, body)
            assert self._chain is not None
            return await self._chain.run(call)
        finally:
            self._bodies.give(held)
            self._in_flight.discard(task)

    async def _read(self, request: web.Request, length: int) -> bytes:
        """The body; an unsized (chunked) one takes its room as it arrives."""
        if length or request.content_length is not None:
            return await request.read()
        parts: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > MAX_REQUEST_BYTES:
                raise web.HTTPRequestEntityTooLarge(max_size=MAX_REQUEST_BYTES, actual_size=size)
            if not self._bodies.take(len(chunk), request):
                raise _BusyError
            parts.append(chunk)
        return b"".join(parts)

    def _redactor_now(self) -> Redactor:
        """The redaction rules of the configuration in force (the replay section's)."""
        patterns = self.config.replay.redaction.patterns
        if self._redactor_patterns != patterns:
            self._redactor = Redactor(patterns)
            self._redactor_patterns = patterns
        return self._redactor

    def _emit(self, record: CallRecord, trace: TraceContext | None) -> None:
        """The spans of proxied calls join the received ones (SLIs, queue, upstream): built
        and handed to the pipeline just after the call's answer is written."""
        self._spans_after.add(self._emit_now, record, trace)

    def _emit_now(self, record: CallRecord, trace: TraceContext | None) -> None:
        pipeline = self.context.pipeline
        try:
            if trace is None:
                trace = trace_context({}, new_ids)
            redact_record(record, self._redactor_now())
            # held for the agent's own span of the same call (one call, one event), then
            # accepted; a refusal is counted as a drop there
            request = build_request(record, trace, self._resource)
            # the record's attributes are the span's: no need to read them back from it
            pipeline.export_proxy_call(request, record.attributes)
        except Exception:  # the pipeline must never break a call
            log.exception("span sink failed")


_CANONICAL_CACHED = 256
"""Paths up to this long keep their canonical form (a few hundred distinct paths at most in
real traffic; a refused one is never kept, so it is refused again)."""


@functools.lru_cache(maxsize=1024)
def _canonical_cached(raw: str) -> str:
    return canonical_path(raw)


# hot path: per proxied call
def _canonical(raw: str) -> str:
    """:func:`canonical_path`, remembered for the paths clients keep calling."""
    return _canonical_cached(raw) if len(raw) <= _CANONICAL_CACHED else canonical_path(raw)


_TOO_LARGE = f"request body over the proxy's {MAX_REQUEST_BYTES}-byte limit"
_BUSY = "the proxy holds all the request bytes it takes at once ({} bytes); retry shortly"


class _BusyError(Exception):
    """No room for more request bytes in flight."""


class BodyRoom:
    """Bytes of request bodies in flight, against a cap (see :data:`BODIES_IN_FLIGHT_BYTES`)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._by_request: dict[int, int] = {}

    def take(self, size: int, request: web.Request | None = None) -> bool:
        if size and self.held + size > self.limit:
            return False
        self.held += size
        if request is not None:
            self._by_request[id(request)] = self._by_request.get(id(request), 0) + size
        return True

    def held_by(self, request: web.Request) -> int:
        """What an unsized body took as it arrived (handed over to the caller to give back)."""
        return self._by_request.pop(id(request), 0)

    def give(self, size: int) -> None:
        self.held -= size


def _request_timeout(api: str) -> web.Response:
    response = proxy_error(
        api,
        "request_timeout",
        f"request body not received within {http_site.BODY_TIMEOUT:g}s",
    )
    response.force_close()
    return response


def _node_name(config: Config) -> str:
    """``node.name`` of ``config``, or the host name (taken anew on every reload)."""
    return config.node.name or socket.gethostname()


def _resource_attributes(node: str) -> dict[str, str]:
    return {"service.name": "agent-sre-proxy", "agent_sre.node": node}


def _ledger_store(context: NodeContext, on_evict: OnEvict) -> LedgerStore:
    budgets = context.config.budgets
    if budgets.store == "redis":
        from agent_sre_daemon.stores.ledger_redis import RedisLedgerStore

        return RedisLedgerStore(
            budgets.redis_url,
            budgets.redis_prefix,
            budgets.on_store_error,
            clock=context.clock,
            on_evict=on_evict,
        )
    from agent_sre_daemon.stores.ledger_sqlite import SqliteLedgerStore

    return SqliteLedgerStore(context.state_dir / LEDGER_FILE, on_evict=on_evict)


def _bound_address(runner: web.AppRunner) -> tuple[str, int]:
    if not runner.addresses:
        raise RuntimeError("proxy did not bind")
    name = runner.addresses[0]
    return str(name[0]), int(name[1])


@web.middleware
async def _refuse_unrouted(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turns aiohttp's own 404/405 (e.g. CONNECT, authority-form targets) into our shape."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status in (404, 405):
            return proxy_error("passthrough", "route_not_found", NOT_AN_OPEN_PROXY, status=400)
        raise
