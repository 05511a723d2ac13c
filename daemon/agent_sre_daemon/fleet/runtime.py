"""The fleet component: this node's summary published to the shared store, the fleet view
read back, ``GET /v1/fleet[/agents[/{agent}]]``.

Nothing here runs on the hot path but the agent registry's span observer (a dictionary
lookup and a few additions per span). Every ``publish_interval`` a task copies what the
summary needs from the other engines (their services; the SLO hour rings as C-level array
copies), then sums, encodes, decodes and aggregates in a worker thread, and talks to Redis
with a short timeout. When Redis cannot answer, the view is this node alone (``scope:
node``, ``store.ok: false`` and the error), never an error status.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING, Any, ClassVar

from aiohttp import web

from agent_sre import __version__
from agent_sre.fleet.agents import WANTED_KEYS, AgentRegistry
from agent_sre.fleet.slos import slo_rows
from agent_sre.fleet.summary import (
    MAX_AGENT_SLOS,
    MAX_ROWS,
    MAX_TEXT,
    MAX_TITLE,
    AgentSLORow,
    BudgetRow,
    ExperimentRow,
    IncidentRow,
    NodeSummary,
    RolloutRow,
    SummaryError,
    decode,
    encode,
)
from agent_sre.fleet.view import FleetView, build_view
from agent_sre.tracing import conventions as c
from agent_sre_daemon.admin.inputs import query_number
from agent_sre_daemon.component import Component, Prepared, SpanObserverSpec, cancel_tasks
from agent_sre_daemon.errors import AdminInputError, admin_error
from agent_sre_daemon.evictions import counter_of
from agent_sre_daemon.fleet.metrics import FleetMetrics
from agent_sre_daemon.fleet.store import STORE_ERRORS, RedisSummaryStore

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from agent_sre.config import Config
    from agent_sre.fleet.spec import FleetConfig
    from agent_sre.fleet.summary import SLORow
    from agent_sre_daemon.component import NodeContext

log = logging.getLogger("agent_sre.fleet")

AGENT_KEYS = frozenset({c.AGENT_ID, c.GEN_AI_AGENT_ID})
"""SLO labels that name an agent: their instances give the per-agent SLOs."""
STORE_TIMEOUT = 0.5
BUDGETS_TIMEOUT = 2.0
MAX_QUERY = 256


def store_url(config: Config) -> str | None:
    """The Redis URL the fleet shares summaries through (the budgets'), or None."""
    fleet = config.fleet
    if not fleet.enabled or fleet.store == "none":
        return None
    if fleet.store == "redis" or config.budgets.store == "redis":
        return config.budgets.redis_url
    return None


class FleetRuntime(Component):
    """Publishes this node's summary and keeps the fleet view (see the module docstring)."""

    name: ClassVar[str] = "fleet"
    title: ClassVar[str] = "Fleet"

    def __init__(self, context: NodeContext) -> None:
        self.context = context
        self.clock = context.clock
        self.config: FleetConfig = context.config.fleet
        self.metrics = self.register_metrics(context.registry)
        self.registry = AgentRegistry(self.config.max_agents, counter_of(context.registry))
        self._url = store_url(context.config)
        self.store: RedisSummaryStore | None = None
        self.store_error: str | None = None
        self.view: FleetView | None = None
        self.skipped: dict[str, int] = {}
        self._problems: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        context.provide("fleet", self)

    @classmethod
    def register_metrics(cls, registry: CollectorRegistry) -> FleetMetrics:
        return FleetMetrics(registry)

    # -- component ----------------------------------------------------------------------

    async def start(self) -> dict[str, str]:
        if self._url is not None:
            self.store = RedisSummaryStore(self._url, self.config.key_prefix, STORE_TIMEOUT)
        if self.config.enabled:
            self._task = asyncio.create_task(self._loop(), name="fleet-publish")
        return {}

    async def stop(self, deadline: float) -> None:
        await cancel_tasks(self._task)
        self._task = None
        if self.store is not None:
            try:
                await asyncio.wait_for(
                    self.store.close(), max(0.1, deadline - self.clock.monotonic())
                )
            except (*STORE_ERRORS, asyncio.TimeoutError):
                pass
            self.store = None

    async def prepare_reload(self, new: Config) -> Prepared:
        restart = []
        if store_url(new) != self._url or new.fleet.key_prefix != self.config.key_prefix:
            restart.append("fleet.store (the shared store)")
        if new.fleet.enabled != self.config.enabled:
            restart.append("fleet.enabled")

        async def commit() -> None:
            enabled = self.config.enabled
            key_prefix = self.config.key_prefix
            self.config = new.fleet.model_copy(
                update={"enabled": enabled, "key_prefix": key_prefix}
            )
            self.registry.resize(new.fleet.max_agents)

        return Prepared(needs_restart=restart, commit=commit)

    def span_observers(self) -> list[SpanObserverSpec]:
        if not self.config.enabled:
            return []
        return [SpanObserverSpec(self.registry.observe, WANTED_KEYS)]

    def admin_routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/fleet", self._fleet),
            web.get("/v1/fleet/agents", self._agents),
            web.get("/v1/fleet/agents/{agent}", self._agent),
        ]

    def status(self) -> dict[str, Any]:
        view = self.view
        return {
            "fleet": {
                "enabled": self.config.enabled,
                "scope": self.scope,
                "store": self.store_state(),
                "nodes": view.covers if view is not None else None,
            }
        }

    # -- publishing ---------------------------------------------------------------------

    @property
    def scope(self) -> str:
        return "fleet" if self.store is not None and self.store_error is None else "node"

    def store_state(self) -> dict[str, Any]:
        if self.store is None:
            return {"kind": "none", "ok": True, "error": None}
        return {"kind": "redis", "ok": self.store_error is None, "error": self.store_error}

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # the next round tries again; the last view stays
                log.exception("fleet: building the summary or the view failed")
            await asyncio.sleep(self.config.publish_interval)

    async def refresh(self) -> FleetView:
        """Publishes this node's summary and rebuilds the view from every node's."""
        async with self._lock:
            now = self.clock.time()
            summary = await self.local_summary(now)
            encoded = await asyncio.to_thread(encode, summary)
            self.metrics.summary_bytes.set(len(encoded))
            stored: list[tuple[str, bytes]] = []
            if self.store is not None:
                stored = await self._exchange(summary.node, encoded, now)
            view, skipped = await asyncio.to_thread(self._build, summary, stored, now)
            for reason, count in skipped.items():
                self.skipped[reason] = self.skipped.get(reason, 0) + count
                self.metrics.skipped.labels(reason).inc(count)
            for state in ("up", "stale"):
                self.metrics.nodes.labels(state).set(sum(1 for n in view.nodes if n.state == state))
            self.metrics.nodes.labels("expired").set(len(view.expired))
            self.view = view
            return view

    async def _exchange(self, node: str, encoded: bytes, now: float) -> list[tuple[str, bytes]]:
        assert self.store is not None
        try:
            await self.store.publish(node, encoded, now, self.config.ttl)
            stored = await self.store.read(self.config.max_nodes)
        except STORE_ERRORS as exc:
            if self.store_error is None:
                log.warning("fleet: the shared store cannot be reached; this node only: %s", exc)
            self.store_error = f"redis: {type(exc).__name__}: {exc}"[:500]
            self.metrics.publishes.labels("error").inc()
            self.metrics.store_up.set(0)
            return []
        if self.store_error is not None:
            log.info("fleet: the shared store answers again")
        self.store_error = None
        self.metrics.publishes.labels("ok").inc()
        self.metrics.store_up.set(1)
        return stored

    def _build(
        self, own: NodeSummary, stored: list[tuple[str, bytes]], now: float
    ) -> tuple[FleetView, dict[str, int]]:
        """Decodes the others' summaries (each through the gate) and builds the view; runs
        in a worker thread."""
        summaries = [own]
        skipped: dict[str, int] = {}
        problems: dict[str, str] = {}
        for key_node, data in stored:
            if key_node == own.node:
                continue  # our own, fresher in hand
            try:
                summary = decode(data)
            except SummaryError as exc:
                skipped["corrupt"] = skipped.get("corrupt", 0) + 1
                problems[key_node] = f"is skipped: {exc}"
                continue
            if summary.node != key_node:
                skipped["mismatched"] = skipped.get("mismatched", 0) + 1
                problems[key_node] = f"names node {summary.node[:80]!r}; skipped"
                continue
            summaries.append(summary)
        for key_node, problem in problems.items():
            if self._problems.get(key_node) != problem:  # logged once, not every round
                log.warning("fleet: the summary under node %.80r %s", key_node, problem)
        self._problems = problems
        interval = self.config.publish_interval
        view = build_view(summaries, now, self.config.ttl, 2 * interval + 1.0,
                          self.config.max_agents)  # fmt: skip
        return view, skipped

    async def local_summary(self, now: float) -> NodeSummary:
        """This node's summary at ``now``."""
        copies: list[Any] = []
        agent_slos: list[AgentSLORow] = []
        slo = self.context.service("slo")
        engine = getattr(slo, "engine", None)
        if engine is not None:
            copies = engine.hour_copies(now)
            for agent, name, good, total in engine.agent_windows(now, AGENT_KEYS):
                if len(agent_slos) >= MAX_AGENT_SLOS:
                    break
                agent_slos.append(AgentSLORow(agent[:MAX_TEXT], name, good, total))
        slos: tuple[SLORow, ...] = await asyncio.to_thread(slo_rows, copies)
        incidents = self._incidents()
        health = "degraded" if any(i.severity == "critical" for i in incidents) else "ok"
        agents = self.registry.rows(now)
        max_agents = self.config.max_agents
        dropped = {"agents": max(0, len(agents) - max_agents)} if len(agents) > max_agents else {}
        return NodeSummary(
            node=self.context.node_name[:MAX_TEXT] or "unnamed",
            version=__version__,
            published_at=now,
            health=health,
            agents=agents[:max_agents],
            slos=slos,
            agent_slos=tuple(agent_slos),
            budgets=await self._budgets(now),
            incidents=incidents[:MAX_ROWS],
            experiments=self._experiments(),
            rollouts=self._rollouts(),
            dropped=dropped,
        )

    def _incidents(self) -> tuple[IncidentRow, ...]:
        runtime = self.context.service("incidents")
        if runtime is None:
            return ()
        rows = [
            IncidentRow(
                incident.id[:MAX_TEXT],
                str(getattr(incident.severity, "value", incident.severity))[:MAX_TEXT],
                incident.title[:MAX_TITLE],
                incident.opened_at,
                tuple(a[:MAX_TEXT] for a in incident.agents[:MAX_ROWS]),
            )
            for incident in runtime.book.open_incidents()  # type: ignore[attr-defined]
        ]
        rows.sort(key=lambda row: -row.opened_at)
        return tuple(rows[:MAX_ROWS])

    def _experiments(self) -> tuple[ExperimentRow, ...]:
        runtime = self.context.service("chaos")
        if runtime is None:
            return ()
        experiments = runtime.experiments.values()  # type: ignore[attr-defined]
        return tuple(
            ExperimentRow(e.name[:MAX_TEXT], str(e.run.state)[:MAX_TEXT])
            for e in experiments
            if e.run is not None and e.run.injecting
        )[:MAX_ROWS]

    def _rollouts(self) -> tuple[RolloutRow, ...]:
        runtime = self.context.service("rollouts")
        if runtime is None:
            return ()
        rollouts = runtime.rollouts.values()  # type: ignore[attr-defined]
        return tuple(
            RolloutRow(
                r.name[:MAX_TEXT],
                int(r.state.step),
                min(100.0, max(0.0, float(r.state.weight))),
                str(r.state.phase)[:MAX_TEXT],
            )
            for r in rollouts
            if r.running
        )[:MAX_ROWS]

    async def _budgets(self, now: float) -> tuple[BudgetRow, ...]:
        gate = self.context.service("budgets")
        if gate is None:
            return ()
        try:
            budgets = await asyncio.wait_for(gate.budgets(now), BUDGETS_TIMEOUT)  # type: ignore[attr-defined]
        except (*STORE_ERRORS, asyncio.TimeoutError) as exc:
            log.warning("fleet: the budgets' use cannot be read (%s); left out", exc)
            return ()
        rows = [
            BudgetRow(
                str(budget["name"])[:MAX_TEXT],
                str(subject["subject"])[:MAX_TEXT],
                float(subject["spent_usd"]),
                float(budget["limit_usd"]),
            )
            for budget in budgets
            for subject in budget["subjects"]
            if isinstance(subject.get("spent_usd"), float | int)
            and math.isfinite(subject["spent_usd"])
            and subject["spent_usd"] >= 0
        ]
        rows.sort(key=lambda r: -(r.spent_usd / r.limit_usd if r.limit_usd > 0 else r.spent_usd))
        return tuple(rows[:MAX_ROWS])

    # -- admin API ----------------------------------------------------------------------

    async def current(self) -> FleetView:
        """The last view; built now when there is none yet (the first call after start)."""
        view = self.view
        if view is None:
            view = await self.refresh()
        return view

    async def _fleet(self, request: web.Request) -> web.Response:
        view = await self.current()
        answer: dict[str, Any] = {
            "scope": self.scope,
            "store": self.store_state(),
            "node": self.context.node_name,
            **view.to_dict(),
            "skipped": dict(self.skipped),
            "prometheus": {
                "rules": "agent-sre rules prometheus",
                "url": self.config.prometheus_url or None,
            },
        }
        return web.json_response(answer)

    async def _agents(self, request: web.Request) -> web.Response:
        query = request.rel_url.query
        q = query.get("q", "")
        if len(q) > MAX_QUERY:
            raise AdminInputError(f"q: longer than {MAX_QUERY} characters")
        limit = query_number(query, "limit", 100, minimum=1, maximum=500, integer=True)
        offset = query_number(query, "offset", 0, minimum=0, maximum=10**9, integer=True)
        view = await self.current()
        return web.json_response(view.agents_page(q, limit, offset))

    async def _agent(self, request: web.Request) -> web.Response:
        agent = request.match_info["agent"]
        view = await self.current()
        found = view.agent(agent)
        if found is None:
            return admin_error(
                404, "agent_not_found", f"no node of the fleet has seen agent {agent[:200]!r}"
            )
        return web.json_response(found)
