"""The SLO engine in the daemon: fed by the span pipeline, evaluated on a timer, persisted
in ``state_dir``, exposed on ``/metrics`` and the admin API; status changes are signals."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import TYPE_CHECKING, ClassVar

from aiohttp import web

from agent_sre.slo.buckets import SnapshotError
from agent_sre.slo.engine import SLOEngine
from agent_sre_daemon.component import Component, Prepared, SpanObserverSpec, cancel_tasks
from agent_sre_daemon.errors import admin_error
from agent_sre_daemon.slo.metrics import SLOMetrics
from agent_sre_daemon.stores import aside

if TYPE_CHECKING:
    from pathlib import Path

    from prometheus_client import CollectorRegistry

    from agent_sre.config import Config
    from agent_sre.slo.report import SLOReport
    from agent_sre_daemon.component import NodeContext

log = logging.getLogger("agent_sre.slo")

SNAPSHOT_FILE = "slo-buckets.json"
EVALUATE_EVERY_S = 10.0
SAVE_EVERY_S = 60.0
RECENT_CHANGES = 100


class SLORuntime(Component):
    """Owns the engine: observation, periodic evaluation, persistence, reload, API."""

    name: ClassVar[str] = "slo"
    title: ClassVar[str] = "SLOs"

    def __init__(self, context: NodeContext) -> None:
        self.context = context
        self.clock = context.clock
        self.engine = SLOEngine.from_config(context.config)
        self.path: Path = context.state_dir / SNAPSHOT_FILE
        metrics = self.register_metrics(context.registry)
        metrics.runtime = lambda: self
        self._task: asyncio.Task[None] | None = None
        context.provide("slo", self)

    @classmethod
    def register_metrics(cls, registry: CollectorRegistry) -> SLOMetrics:
        return SLOMetrics(registry)

    def now(self) -> float:
        return self.clock.time()

    # -- component ----------------------------------------------------------------------

    async def start(self) -> dict[str, str]:
        self._restore()
        self._task = asyncio.create_task(self._tick(), name="slo-evaluation")
        return {}

    async def stop(self, deadline: float) -> None:
        await cancel_tasks(self._task)
        self._task = None
        self.evaluate()
        self.save()

    async def prepare_reload(self, new: Config) -> Prepared:
        """Builds the engine of the new configuration; on commit it takes over the counts of
        every SLO that still counts the same thing."""
        engine = SLOEngine.from_config(new)

        async def commit() -> None:
            carried = engine.carry_over(self.engine, self.now())
            self.engine = engine
            log.info("SLO counts carried over: %s", ", ".join(carried) or "none")

        moved = new.state_dir != self.context.config.state_dir
        return Prepared(needs_restart=["state_dir (SLO snapshot)"] if moved else [], commit=commit)

    def span_observers(self) -> list[SpanObserverSpec]:
        if not len(self.engine):
            return []
        return [SpanObserverSpec(self.engine.observe, self.engine.wanted_keys)]

    def admin_routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/slos", self._list),
            web.get("/v1/slos/{name}", self._show),
            web.get("/v1/slos/{name}/burndown", self._burn_down),
        ]

    # -- engine -------------------------------------------------------------------------

    def reports(self, now: float) -> list[SLOReport]:
        return self.engine.reports(now)

    def evaluate(self) -> None:
        for change in self.engine.evaluate(self.now()):
            self.context.bus.publish(change.to_signal())

    def save(self) -> None:
        """Writes the SLO counts; a full or failing disk keeps the last snapshot (logged)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(self.engine.snapshot()))
            os.replace(tmp, self.path)
        except OSError as exc:
            log.error("cannot save SLO counts to %s (the last snapshot stays): %s", self.path, exc)
            tmp.unlink(missing_ok=True)

    def _restore(self) -> None:
        if not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text())
            restored = self.engine.restore(data, self.now())
        except (OSError, ValueError, RecursionError, SnapshotError) as exc:
            what = "the SLO windows (they start empty)"
            try:
                kept = aside.move_aside(self.path, "corrupt", self.clock)
            except OSError as error:
                aside.report(self.path.name, what, f"{exc}; could not be moved aside: {error}")
            else:
                aside.report(self.path.name, what, f"{type(exc).__name__}: {exc}", kept)
            return
        log.info("restored SLO counts of %s", ", ".join(restored) or "no SLO")
        # windows of SLOs the file no longer has (or that count something else now): kept
        # next to the snapshot, which the next save writes without them
        for name, entry in sorted(data["slos"].items()):
            if name in restored:
                continue
            what = f"windows of SLO {name}"
            reason = "no SLO of that name counting the same thing is configured"
            try:
                kept = aside.keep_item(self.path, "set-aside", name, entry, self.clock)
            except OSError as exc:
                aside.report(self.path.name, what, f"{reason}; could not be kept: {exc}")
            else:
                aside.report(self.path.name, what, reason, kept)

    async def _tick(self) -> None:
        last_save = self.clock.monotonic()
        while True:
            await asyncio.sleep(EVALUATE_EVERY_S)
            self.evaluate()
            if self.clock.monotonic() - last_save >= SAVE_EVERY_S:
                self.save()
                last_save = self.clock.monotonic()

    # -- admin API ----------------------------------------------------------------------

    async def _list(self, request: web.Request) -> web.Response:
        self.evaluate()
        now = self.now()
        changes = self.context.bus.recent(type_="slo_status", source="slo")
        return web.json_response(
            {
                "slos": [r.to_dict() for r in self.reports(now)],
                "signals": [dict(s.details) for s in changes[-RECENT_CHANGES:]],
                "at": now,
            }
        )

    async def _show(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.engine:
            return admin_error(404, "slo_not_found", f"no SLO named {name!r}")
        self.evaluate()
        return web.json_response(self.engine.report(name, self.now()).to_dict())

    async def _burn_down(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.engine:
            return admin_error(404, "slo_not_found", f"no SLO named {name!r}")
        now = self.now()
        return web.json_response(
            {"name": name, "at": now, **self.engine.burn_down(name, now).to_dict()}
        )
