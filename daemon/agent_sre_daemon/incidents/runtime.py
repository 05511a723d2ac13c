"""The incidents engine in the daemon: subscribes to the bus, keeps incidents in SQLite
under ``state_dir``, runs automatic responses through the node's actions, sends
notifications from a durable outbox, and serves ``/v1/incidents``."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import TYPE_CHECKING, Any, ClassVar

from aiohttp import web

from agent_sre.incidents.book import IncidentBook, signal_key
from agent_sre.incidents.model import IncidentState
from agent_sre.incidents.postmortem import postmortem
from agent_sre.incidents.rules import RuleBook
from agent_sre.signals import Severity, Signal, SignalState
from agent_sre_daemon.admin.inputs import json_body
from agent_sre_daemon.component import (
    ACTION_CALLER,
    ActionCaller,
    Component,
    Prepared,
    cancel_tasks,
)
from agent_sre_daemon.errors import admin_error
from agent_sre_daemon.evictions import counter_of
from agent_sre_daemon.incidents.breaker import CircuitBreakerStage
from agent_sre_daemon.incidents.metrics import IncidentMetrics
from agent_sre_daemon.incidents.notify import Notifier
from agent_sre_daemon.incidents.store import IncidentStore
from agent_sre_daemon.incidents.throttle import ThrottleStage
from agent_sre_daemon.incidents.throttle_admin import throttle_routes

if TYPE_CHECKING:
    from collections.abc import Mapping

    from prometheus_client import CollectorRegistry

    from agent_sre.config import Config
    from agent_sre.incidents.book import Change
    from agent_sre.incidents.model import Incident
    from agent_sre.incidents.rules import PlannedAction
    from agent_sre_daemon.component import NodeContext
    from agent_sre_daemon.proxy.stage import Stage
    from agent_sre_daemon.signals import Subscription

log = logging.getLogger("agent_sre.incidents")

DB_FILE = "incidents.sqlite"
HOUSEKEEPING_S = 1.0
ACTION_TIMEOUT_S = 10.0
KEEP_RESOLVED_IN_MEMORY_S = 7 * 86400.0


class IncidentsRuntime(Component):
    name: ClassVar[str] = "incidents"
    title: ClassVar[str] = "Incidents, notifications and circuit breakers"

    def __init__(self, context: NodeContext) -> None:
        self.context = context
        self.clock = context.clock
        self.config = context.config
        self.metrics = self.register_metrics(context.registry)
        self.book = IncidentBook(self.config.incidents, on_evict=counter_of(context.registry))
        self.rules = RuleBook(self.config.incidents.rules, counter_of(context.registry))
        self.store = IncidentStore(context.state_dir / DB_FILE, self.clock)
        context.provide("incidents", self)  # the fleet summary reads the open incidents
        self.notifier = Notifier(
            self.config.alerting,
            self.store,
            self.metrics,
            self.clock,
            context.node_name,
            context.bus,
        )
        self.breakers = CircuitBreakerStage(
            list(self.config.incidents.circuit_breakers),
            self.clock,
            context.bus,
            self.metrics,
            counter_of(context.registry),
        )
        self._subscription: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()
        self.throttles = ThrottleStage(
            self.clock, self.store, context.bus, counter_of(context.registry)
        )
        context.register_action("open_circuit", self._open_circuit)
        context.register_action("throttle_agent", self.throttles.throttle)
        context.register_action("unthrottle_agent", self.throttles.unthrottle)

    @classmethod
    def register_metrics(cls, registry: CollectorRegistry) -> IncidentMetrics:
        return IncidentMetrics(registry)

    # -- life -----------------------------------------------------------------------------

    async def start(self) -> dict[str, str]:
        self.book.load(await self.store.open())
        self._gauge()
        now = self.clock.time()
        restored = self.throttles.restore(await self.store.throttles(now), now)
        await self.notifier.start()
        if self.config.incidents.enabled:
            self._subscription = self.context.bus.subscribe("incidents")
            self._tasks.append(asyncio.create_task(self._consume(), name="incidents"))
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="incidents-tick"))
        log.info(
            "incidents: %d open, %d receivers, %d rules, %d circuit breakers; agents throttled: %d",
            len(self.book.open_incidents()),
            len(self.config.alerting.receivers),
            len(self.config.incidents.rules),
            len(self.config.incidents.circuit_breakers),
            restored,
        )
        return {}

    async def stop(self, deadline: float) -> None:
        await cancel_tasks(*self._tasks)
        self._tasks.clear()
        if self._subscription is not None:
            # what was published before the stop still counts
            while (signal := self._subscription.get_nowait()) is not None:
                await self._handle(self.book.observe(signal, self.clock.time()))
            self._subscription.close()
        await self.notifier.stop(deadline)
        await self.store.close()

    async def prepare_reload(self, new: Config) -> Prepared:
        restart = []
        if new.state_dir != self.config.state_dir:
            restart.append("state_dir (incidents)")
        if new.incidents.enabled != self.config.incidents.enabled:
            restart.append("incidents.enabled")
        rules = RuleBook(new.incidents.rules, counter_of(self.context.registry))

        async def commit() -> None:
            rules.carry_over(self.rules)
            self.rules = rules
            self.book.config = new.incidents
            await self.notifier.apply(new.alerting)
            self.breakers.apply(list(new.incidents.circuit_breakers))
            self.config = new

        return Prepared(needs_restart=restart, commit=commit)

    def proxy_stages(self) -> list[Stage]:
        return [self.throttles, self.breakers]

    def admin_routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/incidents", self._list),
            web.get("/v1/incidents/{id}", self._show),
            web.get("/v1/incidents/{id}/postmortem", self._postmortem),
            web.post("/v1/incidents/{id}/ack", self._ack),
            web.post("/v1/incidents/{id}/resolve", self._resolve),
            web.get("/v1/circuits", self._circuits),
            web.get("/v1/notifications/dead", self._dead_letters),
            *throttle_routes(self.throttles, self.clock),
        ]

    def status(self) -> dict[str, Any]:
        return {
            "incidents": {
                "open": len(self.book.open_incidents()),
                "circuits_open": sum(
                    1 for c in self.breakers.circuits.values() if c.state.value != "closed"
                ),
                "agents_throttled": len(self.throttles.in_force(self.clock.time())),
            }
        }

    # -- signals --------------------------------------------------------------------------

    async def _consume(self) -> None:
        assert self._subscription is not None
        while True:
            signal = await self._subscription.get()
            try:
                await self._handle(self.book.observe(signal, self.clock.time()))
            except (OSError, sqlite3.Error) as exc:  # a full or failing disk: one line
                log.error(
                    "incidents: cannot save what signal %s/%s changed (%s); it stays in"
                    " memory and is saved with its next change",
                    signal.source,
                    signal.type,
                    exc,
                )
            except Exception:
                log.exception("incidents: handling signal %s/%s failed", signal.source,
                              signal.type)  # fmt: skip

    async def _housekeeping(self) -> None:
        reconciled = False
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            try:
                now = self.clock.time()
                if not reconciled:
                    # after the other engines restored their state
                    reconciled = True
                    await self._handle(self.reconcile_slos(now))
                await self._handle(self.book.tick(now))
                await self.notifier.enqueue(self.notifier.resends(self.book.open_incidents(), now))
                self.book.forget_resolved_before(now - KEEP_RESOLVED_IN_MEMORY_S)
            except Exception:
                log.exception("incidents: housekeeping failed")

    async def _handle(self, changes: list[Change]) -> None:
        if not changes:
            return
        async with self._lock:
            now = self.clock.time()
            touched: dict[str, Incident] = {}
            for change in changes:
                incident = change.incident
                touched[incident.id] = incident
                self._count(change)
                if change.event in ("opened", "escalated", "resolved"):
                    log.log(
                        logging.WARNING if change.event != "resolved" else logging.INFO,
                        "incident %s %s (%s): %s",
                        incident.id, change.event, incident.severity.value, incident.title,
                    )  # fmt: skip
                await self.notifier.enqueue(self.notifier.payloads(change, now))
                for planned in self.rules.plan(change, now):
                    await self._act(change, planned)
            await self.store.save([i.to_dict() for i in touched.values()])
            self._gauge()

    def reconcile_slos(self, now: float) -> list[Change]:
        """Resolves what a restart made us miss: SLO instances of open incidents that are
        healthy again (or gone from the configuration) now. The SLO engine only signals
        changes, so a recovery during the restart would otherwise leave them open."""
        slo = self.context.service("slo")
        reports = getattr(slo, "reports", None)
        waiting = [
            (incident, entry.details)
            for incident in self.book.open_incidents()
            for entry in incident.timeline
            if entry.kind == "signal"
            and entry.details.get("type") == "slo_status"
            and entry.details.get("source") == "slo"
        ]
        if reports is None or not waiting:
            return []
        status: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
        for report in reports(now):
            for instance in report.instances:
                status[(report.name, tuple(sorted(instance.labels.items())))] = (
                    instance.status.value
                )
        changes: list[Change] = []
        for incident, details in waiting:
            labels = dict(details.get("labels") or {})
            instance = tuple(sorted((k, v) for k, v in labels.items() if k != "slo"))
            if status.get((labels.get("slo", ""), instance), "HEALTHY") != "HEALTHY":
                continue
            resolved = Signal(
                type="slo_status",
                source="slo",
                severity=Severity.INFO,
                at=now,
                message=f"SLO {labels.get('slo')} is healthy (or gone) after a restart",
                labels=labels,
                state=SignalState.RESOLVED,
            )
            if incident.is_open and signal_key(resolved) in incident.active:
                changes.extend(self.book.observe(resolved, now))
        return changes

    def _count(self, change: Change) -> None:
        incident = change.incident
        if change.event == "opened":
            self.metrics.opened.labels(incident.severity.value).inc()
        elif change.event == "resolved" and incident.resolved_at is not None:
            self.metrics.resolved.labels(incident.resolved_by).inc()
            self.metrics.time_to_resolve.observe(incident.duration(incident.resolved_at))

    def _gauge(self) -> None:
        counts = dict.fromkeys(Severity, 0)
        for incident in self.book.open_incidents():
            counts[incident.severity] += 1
        for severity, count in counts.items():
            self.metrics.open.labels(severity.value).set(count)

    # -- automatic responses --------------------------------------------------------------

    async def _act(self, change: Change, planned: PlannedAction) -> None:
        incident = change.incident
        now = self.clock.time()
        what = f"{planned.action}({', '.join(f'{k}={v}' for k, v in planned.params.items())})"
        details = {"rule": planned.rule, "action": planned.action, "params": planned.params}
        if planned.cooling_down:
            self.metrics.actions.labels(planned.action, "cooling_down").inc()
            log.debug("incident %s: rule %s: %s %s", incident.id, planned.rule, what,
                      planned.skipped)  # fmt: skip
            return
        if planned.skipped:
            outcome, message = "skipped", f"rule {planned.rule}: {what} skipped: {planned.skipped}"
        elif planned.dry_run:
            outcome, message = "dry_run", f"rule {planned.rule}: would run {what} (dry run)"
        elif planned.action == "notify":
            only = [r.strip() for r in planned.params.get("receivers", "").split(",") if r]
            sent = self.notifier.payloads(change, now, only=only or None)
            await self.notifier.enqueue(sent)
            outcome = "ran"
            message = f"rule {planned.rule}: notified {', '.join(r for r, _ in sent) or 'nobody'}"
        else:
            action = self.context.actions.get(planned.action)
            if action is None:
                outcome = "unavailable"
                message = (
                    f"rule {planned.rule}: {what} unavailable (no component offers "
                    f"{planned.action!r} on this node)"
                )
            else:
                caller = ACTION_CALLER.set(ActionCaller(planned.rule, incident.id))
                try:
                    done = await asyncio.wait_for(action(planned.params), ACTION_TIMEOUT_S)
                    outcome, message = "ran", f"rule {planned.rule}: {done}"
                except Exception as exc:
                    outcome = "failed"
                    message = f"rule {planned.rule}: {what} failed: {type(exc).__name__}: {exc}"
                finally:
                    ACTION_CALLER.reset(caller)
        self.metrics.actions.labels(planned.action, outcome).inc()
        log.log(logging.WARNING if outcome == "failed" else logging.INFO, "incident %s: %s",
                incident.id, message)  # fmt: skip
        incident.note(now, "action", message, outcome=outcome, **details)

    async def _open_circuit(self, params: Mapping[str, str]) -> str:
        target = params["target"]
        opened = self.breakers.force_open(target, params.get("reason") or "opened by a rule")
        if not opened:
            return f"no circuit breaker covers {target}"
        return f"circuit {target} opened ({', '.join(opened)})"

    # -- admin API ------------------------------------------------------------------------

    def _find(self, request: web.Request) -> Incident | web.Response:
        incident_id = request.match_info["id"]
        incident = self.book.incidents.get(incident_id)
        if incident is None:
            return admin_error(404, "incident_not_found", f"no incident {incident_id!r}")
        return incident

    async def _list(self, request: web.Request) -> web.Response:
        state = request.query.get("state", "all")
        if state not in ("all", "open", "resolved"):
            return admin_error(400, "invalid_argument", "state must be all, open or resolved")
        found = [
            i
            for i in self.book.incidents.values()
            if state == "all" or (state == "open") == i.is_open
        ]
        found.sort(key=lambda i: i.opened_at, reverse=True)
        rows = []
        for incident in found:
            row = incident.to_dict()
            row["timeline"] = len(incident.timeline)
            rows.append(row)
        return web.json_response({"incidents": rows})

    async def _show(self, request: web.Request) -> web.Response:
        found = self._find(request)
        if isinstance(found, web.Response):
            return found
        return web.json_response(found.to_dict())

    async def _postmortem(self, request: web.Request) -> web.Response:
        found = self._find(request)
        if isinstance(found, web.Response):
            return found
        return web.Response(text=postmortem(found, self.clock.time()), content_type="text/markdown")

    async def _ack(self, request: web.Request) -> web.Response:
        return await self._operate(request, "ack")

    async def _resolve(self, request: web.Request) -> web.Response:
        return await self._operate(request, "resolve")

    async def _operate(self, request: web.Request, what: str) -> web.Response:
        found = self._find(request)
        if isinstance(found, web.Response):
            return found
        who = "operator"
        body = await json_body(request, required=False)
        if isinstance(body, dict) and isinstance(body.get("by"), str) and body["by"]:
            who = body["by"][:100]
        if what == "ack" and found.state is IncidentState.RESOLVED:
            return admin_error(409, "incident_resolved", f"incident {found.id} is resolved")
        now = self.clock.time()
        if what == "ack":
            change = self.book.acknowledge(found.id, now, who)
        else:
            change = self.book.resolve(found.id, now, who)
        await self._handle([change])
        return web.json_response(found.to_dict())

    async def _circuits(self, request: web.Request) -> web.Response:
        return web.json_response({"circuits": self.breakers.states()})

    async def _dead_letters(self, request: web.Request) -> web.Response:
        receiver = request.query.get("receiver") or None
        letters = await self.store.dead_letters(receiver)
        return web.json_response(
            {
                "dead_letters": [letter.to_dict() for letter in letters],
                "limit": self.config.alerting.dead_letter_limit,
            }
        )
