"""The SLO metrics, computed at scrape time from the engine's counters and reports.

A scrape of ``/metrics`` copies the counts on the event loop (:meth:`SLOEngine.gather`, a few
bucket reads per instance) and builds the reports and their text in a worker thread
(``exporters/scrape.py``): with thousands of instances the loop is not held for the reports.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from agent_sre.slo.engine import SLOEngine
from agent_sre.slo.spec import prometheus_label_name
from agent_sre_daemon.exporters.scrape import OFF_LOOP, render_off_loop

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

    from agent_sre.slo.engine import EngineGathered
    from agent_sre.slo.report import InstanceReport, SLOReport
    from agent_sre_daemon.slo.runtime import SLORuntime

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

    def __init__(self, registry: CollectorRegistry) -> None:
        self.runtime: Callable[[], SLORuntime | None] = lambda: None
        """Where the reports come from (set by the runtime once it exists)."""
        registry.register(self)
        render_off_loop(registry, self.render)

    label_names = {
        name: ("slo", "<labels the SLO declares>", *extra) for name, _, _, extra in _FAMILIES
    }
    """Labels per family, for docs/metrics.md."""

    def describe(self) -> list[Metric]:
        # Describing without collecting keeps registration cheap; names for docs/metrics.md.
        return list(_families([]))

    def collect(self) -> Iterator[Metric]:
        if OFF_LOOP.get():
            return  # this exposition has them from render(), computed off the loop
        runtime = self.runtime()
        yield from _families(runtime.reports(runtime.now()) if runtime is not None else [])

    async def render(self) -> bytes:
        """The SLO families as exposition text: the counts copied here, on the loop; the
        reports built and encoded in a worker thread."""
        runtime = self.runtime()
        if runtime is None:
            return generate_latest(_Families([]))
        now = runtime.now()
        gathered = runtime.engine.gather(now)
        return await asyncio.to_thread(_text, gathered, now)


class _Families:
    """What ``generate_latest`` reads: an object with ``collect()``."""

    def __init__(self, reports: list[SLOReport]) -> None:
        self.reports = reports

    def collect(self) -> Iterable[Metric]:
        return _families(self.reports)


def _text(gathered: EngineGathered, now: float) -> bytes:
    # off the loop: reads only the copied numbers and the SLOs' specifications
    return generate_latest(_Families(SLOEngine.reports_from(gathered, now)))


def _families(reports: list[SLOReport]) -> Iterator[Metric]:
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
