"""The SLO engine in the daemon: fed by the span pipeline, evaluated on a timer, persisted
in ``state_dir``, exposed on ``/metrics`` and the admin API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from agent_sre.slo.buckets import SnapshotError
from agent_sre.slo.engine import SLOEngine
from agent_sre.slo.spec import prometheus_label_name

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

    from agent_sre.config import Config
    from agent_sre.slo.alerts import StatusChange
    from agent_sre.slo.report import InstanceReport, SLOReport
    from agent_sre.tracing.view import AgentSpan

log = logging.getLogger("agent_sre.slo")

SNAPSHOT_FILE = "slo-buckets.json"
EVALUATE_EVERY_S = 10.0
SAVE_EVERY_S = 60.0


_FAMILIES = (
    (
        "agent_sre_slo_events",
        "counter",
        "SLO events by result (good or bad); sum across nodes for fleet SLOs.",
        ("result",),
    ),
    (
        "agent_sre_slo_sli_ratio",
        "gauge",
        "SLI (good / valid events) over each window.",
        ("window",),
    ),
    (
        "agent_sre_slo_error_budget_remaining_ratio",
        "gauge",
        "Share of the error budget left over the SLO window.",
        (),
    ),
    (
        "agent_sre_slo_burn_rate",
        "gauge",
        "Error-budget burn rate over each window (1 = exactly on budget).",
        ("window",),
    ),
    (
        "agent_sre_slo_alert_firing",
        "gauge",
        "1 while a multiwindow burn-rate alert fires.",
        ("severity", "long_window"),
    ),
    ("agent_sre_slo_target_ratio", "gauge", "The SLO's target.", ()),
    (
        "agent_sre_slo_status",
        "gauge",
        "1 for the SLO instance's current status (HEALTHY, WARNING, CRITICAL, EXHAUSTED).",
        ("status",),
    ),
)


class SLOMetrics(Collector):
    """Computes the SLO metrics at scrape time from the engine's counters and reports.

    Label sets an SLO declares (``labels: [agent.id]``) become Prometheus labels
    (``agent_id``) next to ``slo``.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        runtime: Callable[[], SLORuntime | None] = lambda: None,
    ) -> None:
        self._runtime = runtime
        registry.register(self)

    label_names = {
        name: ("slo", "<labels the SLO declares>", *extra) for name, _, _, extra in _FAMILIES
    }
    """Labels per family, for docs/metrics.md."""

    def describe(self) -> list[Metric]:
        # Describing without collecting keeps registration cheap; names for docs/metrics.md.
        return list(_families({}))

    def collect(self) -> Iterator[Metric]:
        runtime = self._runtime()
        if runtime is None:
            yield from _families({})
            return
        yield from _families({"runtime": runtime, "now": runtime.clock()})


def _families(context: dict[str, Any]) -> Iterator[Metric]:
    runtime: SLORuntime | None = context.get("runtime")
    reports = runtime.reports(context["now"]) if runtime is not None else []
    label_names = sorted({prometheus_label_name(k) for r in reports for k in r.label_keys})
    for name, kind, doc, extra in _FAMILIES:
        labels = ["slo", *label_names, *extra]
        family: Metric
        if kind == "counter":
            family = CounterMetricFamily(name, doc, labels=labels)
        else:
            family = GaugeMetricFamily(name, doc, labels=labels)
        for report in reports:
            for instance in _instances(report):
                base = [report.name, *_label_values(instance, label_names)]
                _add_samples(family, name, report, instance, base)
        yield family


def _instances(report: SLOReport) -> tuple[InstanceReport, ...]:
    return report.instances if report.label_keys else (report.overall,)


def _label_values(instance: InstanceReport, names: list[str]) -> list[str]:
    by_name = {prometheus_label_name(k): v for k, v in instance.labels.items()}
    return [by_name.get(name, "") for name in names]


def _add_samples(
    family: Metric, name: str, report: SLOReport, instance: InstanceReport, base: list[str]
) -> None:
    add: Callable[..., None] = family.add_metric  # type: ignore[attr-defined]
    if name == "agent_sre_slo_events":
        add([*base, "good"], instance.events_good)
        add([*base, "bad"], instance.events_bad)
    elif name == "agent_sre_slo_sli_ratio":
        for window in instance.windows:
            if window.sli is not None:
                add([*base, window.window], window.sli)
    elif name == "agent_sre_slo_error_budget_remaining_ratio":
        add(base, instance.budget.remaining_ratio)
    elif name == "agent_sre_slo_burn_rate":
        for window in instance.windows:
            add([*base, window.window], window.burn_rate)
    elif name == "agent_sre_slo_alert_firing":
        for alert in instance.alerts:
            add([*base, alert.severity, alert.long_window], 1.0 if alert.firing else 0.0)
    elif name == "agent_sre_slo_target_ratio":
        add(base, report.target)
    elif name == "agent_sre_slo_status":
        add([*base, instance.status.value], 1.0)


class SLORuntime:
    """Owns the engine: observation, periodic evaluation, persistence, reload, API."""

    def __init__(
        self, config: Config, state_dir: Path, clock: Callable[[], float] = time.time
    ) -> None:
        self.clock = clock
        self.engine = SLOEngine.from_config(config)
        self.path = state_dir / SNAPSHOT_FILE
        self.signals: list[StatusChange] = []
        """Recent status changes (bounded), for the API until incidents consume them."""
        self._task: asyncio.Task[None] | None = None

    @property
    def observe(self) -> Callable[[AgentSpan, float], None]:
        return self.engine.observe

    @property
    def wanted_keys(self) -> frozenset[str]:
        return self.engine.wanted_keys

    def start(self) -> None:
        self._restore()
        self._task = asyncio.create_task(self._tick(), name="slo-evaluation")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.evaluate()
        self.save()

    def reload(self, config: Config) -> list[str]:
        """Builds the engine of the new configuration, keeping the counts of every SLO that
        still counts the same thing. Returns the SLOs carried over."""
        engine = SLOEngine.from_config(config)
        carried = engine.carry_over(self.engine, self.clock())
        self.engine = engine
        return carried

    def reports(self, now: float) -> list[SLOReport]:
        return self.engine.reports(now)

    def evaluate(self) -> None:
        for change in self.engine.evaluate(self.clock()):
            level = logging.WARNING if change.new.value != "HEALTHY" else logging.INFO
            log.log(
                level,
                "SLO %s %s: %s -> %s (firing: %s, budget left %.1f%%)",
                change.slo,
                dict(change.labels) or "",
                change.old.value,
                change.new.value,
                ", ".join(change.firing) or "none",
                change.budget_remaining * 100,
            )
            self.signals.append(change)
        del self.signals[:-100]

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
            restored = self.engine.restore(json.loads(self.path.read_text()), self.clock())
        except (OSError, ValueError, SnapshotError) as exc:
            log.error("cannot restore SLO counts from %s (starting empty): %s", self.path, exc)
            return
        log.info("restored SLO counts of %s", ", ".join(restored) or "no SLO")

    async def _tick(self) -> None:
        last_save = time.monotonic()
        while True:
            await asyncio.sleep(EVALUATE_EVERY_S)
            self.evaluate()
            if time.monotonic() - last_save >= SAVE_EVERY_S:
                self.save()
                last_save = time.monotonic()

    # -- admin API ----------------------------------------------------------------------

    def admin_routes(self) -> list[web.RouteDef]:
        return [web.get("/v1/slos", self._list), web.get("/v1/slos/{name}", self._show)]

    async def _list(self, request: web.Request) -> web.Response:
        self.evaluate()
        now = self.clock()
        return web.json_response(
            {
                "slos": [r.to_dict() for r in self.reports(now)],
                "signals": [change.to_dict() for change in self.signals],
                "at": now,
            }
        )

    async def _show(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.engine:
            return web.json_response(
                {"error": {"type": "slo_not_found", "message": f"no SLO named {name!r}"}},
                status=404,
            )
        self.evaluate()
        return web.json_response(self.engine.report(name, self.clock()).to_dict())
