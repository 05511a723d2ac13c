"""The daemon's own process figures on ``/metrics``: the standard ``process_*`` metrics (CPU
seconds, resident and virtual memory, open and maximum file descriptors, start time) and the
Python runtime's (``python_gc_*``, ``python_info``), as every Prometheus client exports them.

prometheus-client's collectors make the figures; this one collector wraps them so the
daemon's registry (not the library's global one) carries them, and describes their families
up front so ``docs/metrics.md`` lists them and a name clash fails at registration. They are
read at scrape time only (``/proc/self`` on Linux: nothing on another system); a proxied call
or a received span never touches them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from collections.abc import Iterable

FAMILIES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("process_cpu_seconds", "counter", "Total user and system CPU time spent in seconds.", ()),
    ("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", ()),
    ("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", ()),
    (
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        (),
    ),
    ("process_open_fds", "gauge", "Number of open file descriptors.", ()),
    ("process_max_fds", "gauge", "Maximum number of open file descriptors.", ()),
    ("python_gc_objects_collected", "counter", "Objects collected during gc", ("generation",)),
    (
        "python_gc_objects_uncollectable",
        "counter",
        "Uncollectable objects found during GC",
        ("generation",),
    ),
    (
        "python_gc_collections",
        "counter",
        "Number of times this generation was collected",
        ("generation",),
    ),
    (
        "python_info",
        "gauge",
        "Python platform information",
        ("implementation", "major", "minor", "patchlevel", "version"),
    ),
)
"""Name (counters without ``_total``), type, help and labels of every family exported."""


class ProcessMetrics(Collector):
    """The process and runtime collectors of prometheus-client, on one registry."""

    def __init__(self) -> None:
        self._process = ProcessCollector(registry=None)
        self._platform = PlatformCollector(registry=None)
        # GCCollector registers itself somewhere: a registry of its own, never exposed
        self._gc = GCCollector(registry=CollectorRegistry())
        self.label_names = {name: labels for name, _, _, labels in FAMILIES}
        """Labels of each family, for ``docs/metrics.md``."""

    def describe(self) -> Iterable[Metric]:
        families: list[Metric] = []
        for name, kind, doc, labels in FAMILIES:
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            families.append(family(name, doc, labels=list(labels) or None))
        return families

    def collect(self) -> Iterable[Metric]:
        yield from self._process.collect()
        yield from self._gc.collect()
        yield from self._platform.collect()


def register_process_metrics(registry: CollectorRegistry) -> ProcessMetrics:
    """Registers :class:`ProcessMetrics` on ``registry`` and returns it."""
    collector = ProcessMetrics()
    registry.register(collector)
    return collector
