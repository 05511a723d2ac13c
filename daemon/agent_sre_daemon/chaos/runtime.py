"""The chaos component: experiments started and stopped, abort rules checked twice a second
on the node clock, runs persisted off the loop, signals and metrics, the fault stage.

Safety first: nothing is injected unless ``chaos.enabled``; a stop or an abort lifts every
fault of the experiment at once (calls being held are let go); the daemon stopping records
a running experiment as interrupted, and a restart never resumes one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from agent_sre.chaos.abort import (
    Readings,
    first_tripped,
    needs_slos,
    slo_readings,
    steady_state_problems,
)
from agent_sre.chaos.recent import RecentCalls
from agent_sre.chaos.results import Run
from agent_sre.chaos.windows import in_any
from agent_sre.signals import Severity, Signal
from agent_sre_daemon.chaos.admin import admin_routes
from agent_sre_daemon.chaos.metrics import ChaosMetrics
from agent_sre_daemon.chaos.stage import ChaosStage
from agent_sre_daemon.chaos.store import RunStore
from agent_sre_daemon.component import Component, Prepared, cancel_tasks
from agent_sre_daemon.stores import aside

if TYPE_CHECKING:
    from aiohttp import web
    from prometheus_client import CollectorRegistry

    from agent_sre.chaos.abort import SLOReading
    from agent_sre.chaos.spec import ChaosConfig, ExperimentSpec
    from agent_sre.config import Config
    from agent_sre_daemon.component import NodeContext, SLOQuery
    from agent_sre_daemon.proxy.stage import Stage

log = logging.getLogger("agent_sre.chaos")

STORE_FILE = "chaos.sqlite"
CHECK_EVERY_S = 0.5
"""Abort rules, durations and windows are checked this often (the issue asks for 1s)."""


class StartRefusedError(Exception):
    """An experiment cannot start now; ``type`` is the admin API's error type."""

    def __init__(self, type_: str, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.type = type_
        self.status = status


@dataclass
class Experiment:
    """A configured experiment, its recent targeted traffic and its current run."""

    spec: ExperimentSpec
    recent: RecentCalls
    run: Run | None = None
    in_flight: int = 0
    window_open: bool = False

    @property
    def name(self) -> str:
        return self.spec.name

    # hot path: per targeted call
    def observe(self, now: float, ok: bool, faulted: bool, cost: float | None) -> None:
        self.recent.add(now, ok, cost)
        if self.run is not None:
            self.run.observe(now, ok, faulted, cost)


class ChaosRuntime(Component):
    name: ClassVar[str] = "chaos"
    title: ClassVar[str] = "Chaos experiments"

    def __init__(self, context: NodeContext, draw: Any = None) -> None:
        self.context = context
        self.clock = context.clock
        self.metrics = self.register_metrics(context.registry)
        self.draw = draw or random.Random().random
        self.store = RunStore(context.state_dir / STORE_FILE, self.clock)
        self.experiments: dict[str, Experiment] = {}
        self.version = 0
        """Bumped when a run starts (the faults stage re-reads the runs then)."""
        self._apply(context.config.chaos)
        context.provide("chaos", self)  # the fleet summary reads the running experiments
        self._task: asyncio.Task[None] | None = None
        self._saving: set[asyncio.Task[None]] = set()
        self.stage = ChaosStage(self)
        context.register_action("stop_chaos", self._stop_action)

    @classmethod
    def register_metrics(cls, registry: CollectorRegistry) -> ChaosMetrics:
        return ChaosMetrics(registry)

    def _apply(self, config: ChaosConfig) -> None:
        self.config = config
        self.enabled = config.enabled
        self.allow_header_faults = config.allow_header_faults
        now = self.clock.time()
        kept = self.experiments
        fresh: dict[str, Experiment] = {}
        for spec in config.experiments:
            old = kept.get(spec.name)
            if old is not None and old.spec.steady_state.window == spec.steady_state.window:
                old.spec = spec
                fresh[spec.name] = old
            else:
                fresh[spec.name] = Experiment(
                    spec,
                    RecentCalls(spec.steady_state.window),
                    window_open=in_any(spec.schedule, now),
                )
        self.experiments = fresh

    # -- component ------------------------------------------------------------------------

    async def start(self) -> dict[str, str]:
        await self.store.open()
        now = self.clock.time()
        for data in await self.store.unfinished():
            try:
                run = Run.from_dict(data)
            except (KeyError, TypeError, ValueError) as exc:
                aside.report(
                    STORE_FILE,
                    f"run {str(data.get('id', '?'))[:80]}",
                    f"unreadable by this release ({type(exc).__name__}: {exc}); not resumed",
                )
                continue
            if run.state == "observing":  # its faults had stopped: it ends as it would have
                run.finish(now)
                await self.store.save(run.to_dict())
                continue
            run.interrupt(now)
            run.message = "the daemon stopped while the experiment ran; not resumed"
            await self.store.save(run.to_dict())
            self._signal(run, "chaos_interrupted", Severity.WARNING,
                         f"chaos experiment {run.experiment} was interrupted by a restart "
                         "and is not resumed")  # fmt: skip
        self._task = asyncio.create_task(self._tick(), name="chaos-checks")
        return {}

    async def stop(self, deadline: float) -> None:
        await cancel_tasks(self._task)
        self._task = None
        now = self.clock.time()
        for experiment in self.experiments.values():
            run = experiment.run
            if run is None:
                continue
            if run.state == "observing":
                run.finish(now)
            else:
                run.interrupt(now)
                run.reason, run.message = "shutdown", "the daemon stopped during the experiment"
                self.metrics.active.labels(experiment.name).set(0)
                self._signal(run, "chaos_interrupted", Severity.WARNING,
                             f"chaos experiment {run.experiment} interrupted: the daemon "
                             "stopped")  # fmt: skip
            experiment.run = None
            await self.store.save(run.to_dict())
        if self._saving:
            await asyncio.wait(
                set(self._saving), timeout=max(0.1, deadline - self.clock.monotonic())
            )
        await self.store.close()

    async def prepare_reload(self, new: Config) -> Prepared:
        async def commit() -> None:
            now = self.clock.time()
            names = {spec.name: spec for spec in new.chaos.experiments}
            for experiment in list(self.experiments.values()):
                run = experiment.run
                if run is None or not run.injecting:
                    continue
                if not new.chaos.enabled:
                    self._end(experiment, now, "stopped", "disabled", "chaos was disabled")
                elif names.get(experiment.name) != experiment.spec:
                    self._end(experiment, now, "stopped", "reconfigured",
                              "the experiment's configuration changed")  # fmt: skip
            self._apply(new.chaos)

        return Prepared(commit=commit)

    def proxy_stages(self) -> list[Stage]:
        return [self.stage]

    def admin_routes(self) -> list[web.RouteDef]:
        return admin_routes(self)

    def status(self) -> dict[str, Any]:
        return {
            "chaos": {
                "enabled": self.enabled,
                "running": sorted(
                    e.name for e in self.experiments.values() if e.run and e.run.injecting
                ),
            }
        }

    # -- experiments ----------------------------------------------------------------------

    def slo_readings(self) -> dict[str, SLOReading]:
        slo = self.context.service("slo")
        if slo is None:
            return {}
        query: SLOQuery = slo  # type: ignore[assignment]
        return slo_readings(query.reports(self.clock.time()))

    def start_experiment(self, name: str) -> Run:
        """Starts ``name`` now.

        Raises:
            StartRefusedError: chaos disabled, unknown, already running, in a blackout, or
                the steady state does not hold.
        """
        if not self.enabled:
            raise StartRefusedError(
                "chaos_disabled", "chaos is disabled (chaos.enabled: false): nothing is injected"
            )
        experiment = self.experiments.get(name)
        if experiment is None:
            raise StartRefusedError("experiment_not_found", f"no experiment named {name!r}", 404)
        if experiment.run is not None:
            raise StartRefusedError(
                "already_running",
                f"experiment {name} is {experiment.run.state} ({experiment.run.id})",
            )
        spec = experiment.spec
        now = self.clock.time()
        if in_any(spec.blackout, now):
            raise StartRefusedError("blackout", f"experiment {name} is in a blackout window")
        recent = experiment.recent.total(now)
        slos = self.slo_readings() if spec.steady_state.slos_healthy else {}
        problems = steady_state_problems(spec.steady_state, slos, recent.calls, recent.errors)
        if problems:
            raise StartRefusedError(
                "steady_state_not_met", f"experiment {name}: " + "; ".join(problems)
            )
        run = Run(
            id=f"{name}-{int(now)}-{os.urandom(3).hex()}",
            experiment=name,
            started_at=now,
            duration=spec.duration,
            observe_after=spec.observe_after,
            before=recent,
            targets=spec.targets.model_dump(mode="json"),
        )
        experiment.run = run
        self.version += 1
        self.metrics.active.labels(name).set(1)
        self._save(run)
        message = f"chaos experiment {name} started ({run.id}) for {spec.duration:g}s"
        self._signal(run, "chaos_started", Severity.INFO, message)
        log.warning("chaos experiment %s started (%s)", name, run.id)
        return run

    def stop_experiment(self, name: str, reason: str = "operator", message: str = "") -> Run | None:
        experiment = self.experiments.get(name)
        if experiment is None or experiment.run is None or not experiment.run.injecting:
            return None
        run = experiment.run
        self._end(experiment, self.clock.time(), "stopped", reason,
                  message or "stopped by the operator")  # fmt: skip
        return run

    def stop_all(self, reason: str = "operator", message: str = "") -> list[Run]:
        return [
            run
            for name in list(self.experiments)
            if (run := self.stop_experiment(name, reason, message)) is not None
        ]

    def live_runs(self) -> list[Run]:
        return [e.run for e in self.experiments.values() if e.run is not None]

    def _end(self, experiment: Experiment, now: float, state: str, reason: str,
             message: str) -> None:  # fmt: skip
        """Lifts every fault of ``experiment`` at once; the run then watches recovery."""
        run = experiment.run
        assert run is not None
        run.stop_faults(now, state, reason, message)
        self.metrics.active.labels(experiment.name).set(0)
        if state == "aborted":
            self.metrics.aborts.labels(experiment.name, reason).inc()
            self._signal(run, "chaos_aborted", Severity.CRITICAL,
                         f"chaos experiment {run.experiment} aborted: {message}")  # fmt: skip
            log.warning("chaos experiment %s aborted: %s", run.experiment, message)
        elif state == "stopped":
            self._signal(run, "chaos_stopped", Severity.INFO,
                         f"chaos experiment {run.experiment} stopped: {message}")  # fmt: skip
            log.warning("chaos experiment %s stopped: %s", run.experiment, message)
        if run.ended:
            self._finished(experiment, run)
        else:
            self._save(run)

    def _finished(self, experiment: Experiment, run: Run) -> None:
        experiment.run = None
        self._save(run)
        if run.state == "completed":
            self._signal(run, "chaos_completed", Severity.INFO,
                         f"chaos experiment {run.experiment} completed; resilience score "
                         f"{run.score}")  # fmt: skip

    # -- checks ---------------------------------------------------------------------------

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(CHECK_EVERY_S)
            try:
                self.check()
            except Exception:  # a bad check must not end the checks
                log.exception("chaos checks failed")

    def check(self) -> None:
        """Ends runs whose time is up or whose abort rule trips; starts scheduled ones."""
        now = self.clock.time()
        slos: dict[str, SLOReading] | None = None
        for experiment in list(self.experiments.values()):
            spec, run = experiment.spec, experiment.run
            opened = in_any(spec.schedule, now) if spec.schedule else False
            if opened and not experiment.window_open and run is None:
                try:
                    self.start_experiment(spec.name)
                except StartRefusedError as exc:
                    log.warning("scheduled chaos experiment %s not started: %s", spec.name, exc)
            experiment.window_open = opened
            run = experiment.run
            if run is None:
                continue
            if run.state == "observing":
                if (
                    run.faults_stopped_at is not None
                    and now - run.faults_stopped_at >= run.observe_after
                ):
                    run.finish(now)
                    self._finished(experiment, run)
                continue
            if in_any(spec.blackout, now):
                self._end(experiment, now, "stopped", "blackout", "a blackout window opened")
                continue
            if spec.abort_when:
                if slos is None and needs_slos(spec.abort_when, spec.steady_state):
                    slos = self.slo_readings()
                readings = Readings(
                    slos=slos or {},
                    calls=run.during.calls,
                    errors=run.during.errors,
                    spend_usd=run.during.spend_usd,
                )
                tripped = first_tripped(spec.abort_when, readings)
                if tripped is not None:
                    self._end(experiment, now, "aborted", tripped.reason, tripped.message)
                    continue
            if now - run.started_at >= run.duration:
                self._end(experiment, now, "completed", "", "its duration is over")

    # -- effects --------------------------------------------------------------------------

    def _save(self, run: Run) -> None:
        task = asyncio.ensure_future(self._save_now(run.to_dict()))
        self._saving.add(task)
        task.add_done_callback(self._saving.discard)

    async def _save_now(self, data: dict[str, Any]) -> None:
        try:
            await self.store.save(data)
        except Exception:
            log.exception("saving chaos run %s failed", data.get("id"))

    def _signal(self, run: Run, type_: str, severity: Severity, message: str) -> None:
        self.context.bus.publish(
            Signal(
                type=type_,
                source="chaos",
                severity=severity,
                at=self.clock.time(),
                message=message,
                labels={"experiment": run.experiment},
                value=run.score,
                details={"run_id": run.id, "reason": run.reason, "state": run.state},
            )
        )

    async def _stop_action(self, params: Any) -> str:
        name = params.get("experiment", "")
        reason = "action"
        message = params.get("reason") or "stopped by an automatic response"
        if name:
            run = self.stop_experiment(name, reason, message)
            return (
                f"chaos experiment {name} stopped"
                if run
                else f"chaos experiment {name} was not running"
            )
        stopped = self.stop_all(reason, message)
        return (
            f"chaos stopped ({', '.join(r.experiment for r in stopped) or 'nothing was running'})"
        )
