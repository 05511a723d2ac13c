"""The daemon's own process figures (``process_*``, ``python_*``) on its registry."""

from __future__ import annotations

import os
import sys

import psutil
import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent_sre_daemon.exporters.process import FAMILIES, register_process_metrics

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="process_* figures come from /proc"
)


def _families(registry: CollectorRegistry) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            out.setdefault(sample.name, {})[labels] = sample.value
    return out


def test_the_standard_process_figures_are_those_of_this_process() -> None:
    registry = CollectorRegistry()
    register_process_metrics(registry)
    seen = _families(registry)
    me = psutil.Process(os.getpid())
    # start time: psutil reads the same /proc field; within a clock tick of each other
    start = seen["process_start_time_seconds"][()]
    assert abs(start - me.create_time()) < 1.0
    assert seen["process_resident_memory_bytes"][()] > 1_000_000
    assert seen["process_open_fds"][()] >= 3  # stdin, stdout, stderr at least
    assert seen["process_max_fds"][()] >= seen["process_open_fds"][()]
    assert seen["process_cpu_seconds_total"][()] > 0
    generations = {dict(k)["generation"] for k in seen["python_gc_collections_total"]}
    assert generations >= {"0", "1", "2"}
    (info,) = seen["python_info"]
    assert dict(info)["implementation"] == "CPython"


def test_an_open_file_shows_in_open_fds() -> None:
    registry = CollectorRegistry()
    register_process_metrics(registry)
    before = _families(registry)["process_open_fds"][()]
    fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(5)]
    try:
        assert _families(registry)["process_open_fds"][()] == before + 5
    finally:
        for fd in fds:
            os.close(fd)


def test_every_described_family_is_exported_and_nothing_else() -> None:
    registry = CollectorRegistry()
    register_process_metrics(registry)
    exported = {family.name for family in text_string_to_metric_families(
        generate_latest(registry).decode())}  # fmt: skip
    assert exported == {name for name, *_ in FAMILIES}


def test_a_metric_of_the_same_name_cannot_join_the_registry() -> None:
    # described up front: a component registering process_open_fds again fails at start,
    # never silently exports two series of one name
    registry = CollectorRegistry()
    register_process_metrics(registry)
    with pytest.raises(ValueError, match="Duplicated"):
        Counter("process_cpu_seconds", "again", registry=registry)


def test_the_figures_stay_off_the_global_registry() -> None:
    from prometheus_client import REGISTRY

    before = set(REGISTRY._collector_to_names)  # prometheus-client's mapping, read only
    register_process_metrics(CollectorRegistry())
    assert set(REGISTRY._collector_to_names) == before
