"""The delivery engine in the daemon: owns the rollouts, advances their steps on the node
clock, keeps their state in ``state_dir``, and offers the API, actions, metrics and signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import ValidationError

from agent_sre.cost.pricing import Pricer
from agent_sre.delivery.analysis import analyse
from agent_sre.delivery.assign import BASELINE, CANDIDATE
from agent_sre.delivery.rollout import (
    PHASE_CODES,
    ROLLED_BACK,
    Event,
    Rollout,
    RolloutConflictError,
    RolloutState,
    StepSamples,
)
from agent_sre.delivery.spec import RolloutSpec, spec_problem
from agent_sre.signals import Severity, Signal
from agent_sre_daemon.component import Component, Prepared, ReloadError, cancel_tasks
from agent_sre_daemon.delivery import store
from agent_sre_daemon.delivery.admin import admin_routes
from agent_sre_daemon.delivery.metrics import DeliveryMetrics
from agent_sre_daemon.delivery.shadow import ShadowCaller
from agent_sre_daemon.delivery.stage import RolloutStage
from agent_sre_daemon.evictions import counter_of
from agent_sre_daemon.stores import aside

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from aiohttp import web
    from prometheus_client import CollectorRegistry

    from agent_sre.config import Config
    from agent_sre.delivery.analysis import Samples
    from agent_sre.delivery.spec import RolloutsConfig
    from agent_sre_daemon.component import CertificationQuery, NodeContext, SLOQuery
    from agent_sre_daemon.proxy.stage import Stage

log = logging.getLogger("agent_sre.delivery")

SOURCE = "delivery"
_SEVERITY = {"rolled_back": Severity.CRITICAL, "aborted": Severity.WARNING}


def _mark(step: int, started: float, samples: Mapping[str, Samples]) -> tuple[Any, ...]:
    """What tells one state of a step's samples from another (they only grow)."""
    return (step, started, samples[BASELINE].calls, samples[CANDIDATE].calls)


class DeliveryRuntime(Component):
    """Progressive delivery: rollouts of models, upstreams and agent versions."""

    name: ClassVar[str] = "delivery"
    title: ClassVar[str] = "Progressive delivery"

    def __init__(self, context: NodeContext) -> None:
        self.context = context
        self.clock = context.clock
        self.settings: RolloutsConfig = context.config.rollouts
        self.metrics = self.register_metrics(context.registry)
        self.path = context.state_dir / store.STATE_FILE
        self.samples_path = context.state_dir / store.SAMPLES_FILE
        self._samples_saved: dict[str, tuple[Any, ...]] = {}
        """What the samples file holds: rollout -> (step, its start, calls per variant)."""
        self._samples_writing: asyncio.Future[bool] | None = None
        self.rollouts: dict[str, Rollout] = {}
        context.provide("rollouts", self)  # the fleet summary reads the rollouts
        self.posted: dict[str, RolloutSpec] = {}
        """Rollouts declared through the API (kept in the state file)."""
        self.by_route: dict[str, list[Rollout]] = {}
        self.shadow = ShadowCaller(
            self.clock,
            Pricer(context.config.budgets.price_overrides, context.config.proxy.routes),
            self.metrics.shadow_cost,
            self.metrics.requests,
            counter_of(context.registry),
            context.config.budgets.default_max_output_tokens,
        )
        self._task: asyncio.Task[None] | None = None
        context.provide("delivery", self)
        context.register_action("pause_rollout", self._pause_action)
        context.register_action("rollback_rollout", self._rollback_action)

    @classmethod
    def register_metrics(cls, registry: CollectorRegistry) -> DeliveryMetrics:
        return DeliveryMetrics(registry)

    # -- component ----------------------------------------------------------------------

    async def start(self) -> dict[str, str]:
        self._restore()
        await self.shadow.open()
        self._task = asyncio.create_task(self._tick(), name="rollout-evaluation")
        return {}

    async def stop(self, deadline: float) -> None:
        await cancel_tasks(self._task)
        self._task = None
        await self.shadow.close(deadline)
        self.save()
        if self._samples_writing is not None:
            await asyncio.wait({self._samples_writing})  # a write begun at a step check
        self.save_samples()

    async def prepare_reload(self, new: Config) -> Prepared:
        """Rollouts whose spec is unchanged keep their state; changed and new ones start
        over at their first step; removed ones are forgotten."""
        routes = {route.name: route for route in new.proxy.routes}
        for spec in self.posted.values():
            problem = spec_problem(
                spec, dict(routes), {s.name for s in new.slos}, new.certification.tier_names
            )
            if problem is not None:
                raise ReloadError(
                    f"rollouts: posted rollout {spec.name}.{problem[0]}: {problem[1]}"
                )
            if any(r.name == spec.name for r in new.rollouts.rollouts):
                raise ReloadError(f"rollouts: {spec.name!r} is also a rollout posted to the API")

        async def commit() -> None:
            self.settings = new.rollouts
            self.shadow.pricer = Pricer(new.budgets.price_overrides, new.proxy.routes)
            self.shadow.default_max_output = new.budgets.default_max_output_tokens
            now = self.clock.time()
            kept = dict(self.rollouts)
            self.rollouts = {}
            for spec in [*new.rollouts.rollouts, *self.posted.values()]:
                old = kept.get(spec.name)
                if old is not None and old.spec == spec:
                    self.rollouts[spec.name] = old
                else:
                    self.rollouts[spec.name] = self._new(spec, now, None)
            self._index()
            self.save()

        return Prepared(commit=commit)

    def proxy_stages(self) -> list[Stage]:
        return [RolloutStage(self)]

    def admin_routes(self) -> list[web.RouteDef]:
        return admin_routes(self)

    def status(self) -> dict[str, Any]:
        return {"rollouts": {name: r.state.phase for name, r in self.rollouts.items()}}

    # -- rollouts -----------------------------------------------------------------------

    def evaluate(self) -> list[Event]:
        """Judges every running rollout now; publishes and saves what changed."""
        now = self.clock.time()
        burns = self._burn_rates(now)
        events: list[Event] = []
        for rollout in self.rollouts.values():
            slo = rollout.spec.analysis.slo
            happened = rollout.evaluate(now, burns.get(slo) if slo else None)
            self._announce(rollout, happened)
            events += happened
        self.save()
        return events

    async def evaluate_aside(self) -> list[Event]:
        """As :meth:`evaluate`, with each analysis made in a worker thread from copies of
        the samples, so a large step does not hold up the proxy's calls."""
        events: list[Event] = []
        for rollout in list(self.rollouts.values()):
            if not rollout.running:
                continue
            step, samples = rollout.state.step, rollout.samples
            copies = (samples[BASELINE].copy(), samples[CANDIDATE].copy())
            result = await asyncio.to_thread(analyse, rollout.spec.analysis, *copies)
            if rollout.state.step != step or self.rollouts.get(rollout.name) is not rollout:
                continue  # promoted, paused or replaced meanwhile: judged again next time
            now = self.clock.time()
            slo = rollout.spec.analysis.slo
            burn = self._burn_rates(now).get(slo) if slo else None
            happened = rollout.evaluate(now, burn, result)
            self._announce(rollout, happened)
            events += happened
        self.save()
        await self.save_samples_aside()
        return events

    def operate(self, name: str, operation: str, by: str = "operator") -> Rollout:
        """``promote``, ``pause``, ``resume``, ``abort`` or ``rollback`` one rollout.

        Raises:
            KeyError: no rollout of that name.
            RolloutConflictError: the operation does not apply to its phase.
        """
        rollout = self.rollouts[name]
        now = self.clock.time()
        if operation == "rollback":
            happened = rollout.rollback(now, f"rolled back by {by}")
        else:
            happened = getattr(rollout, operation)(now, by)
        self._announce(rollout, happened)
        self.save()
        return rollout

    def declare(self, spec: RolloutSpec) -> Rollout:
        """Starts a rollout posted to the API.

        Raises:
            ValueError: its route or SLO does not exist, or the name is taken.
        """
        if spec.name in self.rollouts:
            raise ValueError(f"name: a rollout named {spec.name!r} exists")
        config = self.context.config
        routes = {route.name: route for route in config.proxy.routes}
        problem = spec_problem(
            spec, dict(routes), {s.name for s in config.slos}, config.certification.tier_names
        )
        if problem is not None:
            raise ValueError(f"{problem[0]}: {problem[1]}")
        rollout = self._new(spec, self.clock.time(), None)
        self.posted[spec.name] = spec
        self.rollouts[spec.name] = rollout
        self._index()
        self._announce(rollout, rollout.state.events[-1:])
        self.save()
        return rollout

    def delete(self, name: str, by: str = "operator") -> tuple[Rollout, bool]:
        """Forgets a rollout posted to the API; a running one is aborted first (every call
        to the baseline, a ``rollout_aborted`` signal: a warning, since a person chose it,
        not the critical ``rollout_rolled_back`` of a failed gate that pages). Returns the
        rollout as it ended and whether it was stopped.

        Raises:
            KeyError: no rollout of that name.
            RolloutConflictError: it is declared in the configuration file (a restart or a
                reload would bring it back).
        """
        rollout = self.rollouts[name]
        if name not in self.posted:
            raise RolloutConflictError(
                f"rollout {name} is declared in the configuration file (rollouts.rollouts): "
                f"remove it there and reload; only rollouts posted to the API are deleted here"
            )
        stopped = rollout.running
        if stopped:
            self._announce(rollout, rollout.abort(self.clock.time(), f"{by}, to delete it"))
        del self.rollouts[name]
        del self.posted[name]
        self._index()  # its gauges go with it
        self.save()
        log.info("rollout %s deleted by %s%s", name, by, " (aborted)" if stopped else "")
        return rollout, stopped

    def save(self) -> None:
        data = {
            name: {"spec": r.spec.model_dump(mode="json"), "state": r.state.to_dict()}
            for name, r in self.rollouts.items()
        }
        posted = [spec.model_dump(mode="json") for spec in self.posted.values()]
        try:
            store.save(self.path, data, posted)
        except OSError as exc:
            log.error("cannot save rollout state to %s: %s", self.path, exc)

    def save_samples(self) -> None:
        """Writes the current steps' samples when they changed since the last write (on
        the loop: for the stop; step checks use :meth:`save_samples_aside`)."""
        changed = self._samples_changed()
        if changed is not None:
            self._write_samples(changed)

    async def save_samples_aside(self) -> None:
        """As :meth:`save_samples`, encoded and written in a worker thread from copies."""
        changed = self._samples_changed()
        if changed is None:
            return
        loop = asyncio.get_running_loop()
        self._samples_writing = loop.run_in_executor(None, self._write_samples, changed)
        # a cancelled step check (the stop) does not cut the write short: stop() waits for it
        await asyncio.shield(self._samples_writing)

    # -- inside -------------------------------------------------------------------------

    def _samples_changed(self) -> dict[str, tuple[RolloutSpec, StepSamples]] | None:
        """Copies of the running rollouts' samples (with their specs); None when the file
        holds them already."""
        running = {name: r for name, r in self.rollouts.items() if r.running}
        marks = {name: _mark(r.state.step, r.state.step_started_at, r.samples)
                 for name, r in running.items()}  # fmt: skip
        if marks == self._samples_saved:
            return None
        return {name: (r.spec, r.samples_copy()) for name, r in running.items()}

    def _write_samples(self, copies: dict[str, tuple[RolloutSpec, StepSamples]]) -> bool:
        """Encodes and writes ``copies`` (any thread); False, logged, when it cannot."""
        marks = {n: _mark(k.step, k.step_started_at, k.samples) for n, (_, k) in copies.items()}
        records = {
            name: {"spec": spec.model_dump(mode="json"), **kept.to_dict()}
            for name, (spec, kept) in copies.items()
        }
        try:
            store.save_samples(self.samples_path, records)
        except OSError as exc:
            log.error("cannot save rollout samples to %s: %s", self.samples_path, exc)
            return False
        self._samples_saved = marks
        return True

    def _restore_samples(self) -> None:
        try:
            saved = store.load_samples(self.samples_path)
        except store.StateFileError as exc:
            self._set_aside_file(self.samples_path, "the samples of the current steps", exc)
            return
        restored = []
        for name, rollout in self.rollouts.items():
            record = saved.get(name)
            if not isinstance(record, dict) or record.get("spec") != rollout.spec.model_dump(
                mode="json"
            ):
                continue  # none, or of a rollout since changed (which started over)
            try:
                calls = [0, 0]
                if rollout.restore_samples(record):
                    calls = [rollout.samples[which].calls for which in (BASELINE, CANDIDATE)]
                if any(calls):
                    restored.append(f"{name} ({calls[0]} baseline, {calls[1]} candidate calls)")
            except (KeyError, TypeError, ValueError) as exc:
                log.error("samples of rollout %s unreadable (its step starts without): %s",
                          name, exc)  # fmt: skip
        if restored:
            log.info("rollout samples restored: %s", ", ".join(restored))

    def _set_aside_file(self, path: Path, what: str, exc: Exception) -> None:
        try:
            kept = aside.move_aside(path, "corrupt", self.clock)
        except OSError as error:
            aside.report(path.name, what, f"{exc}; could not be moved aside: {error}")
        else:
            aside.report(path.name, what, str(exc), kept)

    def _new(self, spec: RolloutSpec, now: float, state: RolloutState | None) -> Rollout:
        rollout = Rollout(spec, now, state, self.settings.max_samples)
        rollout.gate = self._certified
        return rollout

    def _certified(self, tier: str, agent: str, version: str) -> list[str]:
        """What ``agent`` ``version`` lacks for ``tier`` (the certification engine's
        service ``"certification"``); empty when it holds it."""
        certification: CertificationQuery | None = self.context.service(  # type: ignore[assignment]
            "certification"
        )
        if certification is None:
            return [f"{tier}: no certification engine runs to ask"]
        return certification.missing_for(agent, version, tier)

    def _restore(self) -> None:
        now = self.clock.time()
        try:
            saved = store.load(self.path)
        except store.StateFileError as exc:
            self._set_aside_file(self.path, "the rollouts' state (they start over)", exc)
            saved = {"rollouts": {}, "posted": []}
        config = self.context.config
        routes = {route.name: route for route in config.proxy.routes}
        slos = {s.name for s in config.slos}
        declared = {spec.name for spec in self.settings.rollouts}
        dropped = False
        for data in saved["posted"]:
            name = str(data.get("name", "?")) if isinstance(data, dict) else "?"
            try:
                spec = RolloutSpec.model_validate(data)
            except (ValidationError, ValueError, TypeError) as exc:
                reason = f"not a valid rollout: {str(exc).splitlines()[0]}"
            else:
                problem = spec_problem(spec, dict(routes), slos, config.certification.tier_names)
                if problem is None and spec.name not in declared:
                    self.posted[spec.name] = spec
                    continue
                reason = (
                    f"{problem[0]}: {problem[1]}"
                    if problem is not None
                    else "a rollout of that name is now declared in the file"
                )
            # the configuration no longer has what it names: kept aside, never a failed start
            dropped = True
            what = f"posted rollout {name}"
            try:
                kept = aside.keep_item(self.path, "set-aside", name, data, self.clock)
            except OSError as exc:
                aside.report(self.path.name, what, f"{reason}; could not be kept: {exc}")
            else:
                aside.report(self.path.name, what, reason, kept)
        for spec in [*self.settings.rollouts, *self.posted.values()]:
            problem = spec_problem(spec, dict(routes), slos)
            if problem is not None:  # the file's own: `agent-sre validate` says so too
                raise ValueError(f"rollouts: {spec.name}.{problem[0]}: {problem[1]}")
            state = None
            record = saved["rollouts"].get(spec.name)
            if isinstance(record, dict) and record.get("spec") == spec.model_dump(mode="json"):
                try:
                    state = RolloutState.from_dict(record["state"])
                except (KeyError, TypeError, ValueError) as exc:
                    log.error("state of rollout %s unreadable (starting over): %s", spec.name, exc)
            self.rollouts[spec.name] = self._new(spec, now, state)
        self._restore_samples()
        self._index()
        if dropped:
            self.save()  # without what was set aside (it is kept next to the file)
        if self.rollouts:
            log.info(
                "rollouts: %s",
                ", ".join(f"{n} ({r.state.phase})" for n, r in self.rollouts.items()),
            )

    def _index(self) -> None:
        by_route: dict[str, list[Rollout]] = {}
        for rollout in self.rollouts.values():
            by_route.setdefault(rollout.spec.route, []).append(rollout)
        self.by_route = by_route
        self.metrics.weight.clear()
        self.metrics.phase.clear()
        for rollout in self.rollouts.values():
            self._gauges(rollout)

    def _gauges(self, rollout: Rollout) -> None:
        share = rollout.state.weight / 100
        self.metrics.weight.labels(rollout.name, CANDIDATE).set(share)
        self.metrics.weight.labels(rollout.name, BASELINE).set(1 - share)
        self.metrics.phase.labels(rollout.name).set(PHASE_CODES[rollout.state.phase])

    def _announce(self, rollout: Rollout, events: list[Event]) -> None:
        if not events:
            return
        self._gauges(rollout)
        for event in events:
            self.context.bus.publish(
                Signal(
                    type=f"rollout_{event.kind}",
                    source=SOURCE,
                    severity=_SEVERITY.get(event.kind, Severity.INFO),
                    at=event.at,
                    message=event.message,
                    labels={"rollout": rollout.name, "route": rollout.spec.route},
                    value=event.weight,
                    details={
                        "step": event.step + 1,
                        "phase": rollout.state.phase,
                        "candidate": rollout.spec.candidate,
                        "analysis": rollout.state.analysis if event.kind == ROLLED_BACK else {},
                    },
                )
            )

    def _burn_rates(self, now: float) -> dict[str, float]:
        wanted = {r.spec.analysis.slo for r in self.rollouts.values() if r.running}
        wanted.discard(None)
        if not wanted:
            return {}
        slo: SLOQuery | None = self.context.service("slo")  # type: ignore[assignment]
        if slo is None:
            return {}
        return {
            report.name: report.overall.budget.current_burn_rate
            for report in slo.reports(now)
            if report.name in wanted
        }

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.settings.evaluate_every)
            try:
                await self.evaluate_aside()
            except Exception:
                log.exception("rollout evaluation failed")

    async def _pause_action(self, params: Mapping[str, str]) -> str:
        return self._act(params, "pause")

    async def _rollback_action(self, params: Mapping[str, str]) -> str:
        return self._act(params, "rollback")

    def _act(self, params: Mapping[str, str], operation: str) -> str:
        """On the rollout named ``rollout``, else every running one (of ``route``, if
        given)."""
        by = params.get("reason") or "an automatic response"
        name = params.get("rollout")
        if name:
            targets = [name] if name in self.rollouts else []
        else:
            route = params.get("route")
            targets = [
                n
                for n, r in self.rollouts.items()
                if r.running and (not route or r.spec.route == route)
            ]
        done = []
        for target in targets:
            with contextlib.suppress(RolloutConflictError):
                self.operate(target, operation, by)
                done.append(target)
        verb = "paused" if operation == "pause" else "rolled back"
        return f"rollouts {verb}: {', '.join(done)}" if done else f"no rollout {verb}"
