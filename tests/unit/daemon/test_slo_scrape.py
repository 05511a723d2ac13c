"""A scrape renders the SLO families off the event loop (``exporters/scrape.py``): the same
metric names, labels and values as computing them in ``collect()`` on the loop, for the same
spans; and the loop only copies counts meanwhile."""

from __future__ import annotations

import asyncio
import threading

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent_sre.slo.engine import SLOEngine
from agent_sre.tracing.conventions import AgentSpanKind
from agent_sre_daemon.exporters.scrape import exposition
from agent_sre_daemon.slo.metrics import SLOMetrics
from tests.unit.slo.helpers import DAY0, HOUR, MINUTE, slo, span

NOW = DAY0 + 3 * HOUR + 17 * MINUTE


class Runtime:
    """What ``SLOMetrics`` reads of the SLO runtime: the engine and the clock."""

    def __init__(self, engine: SLOEngine) -> None:
        self.engine = engine
        self.gathered_on: list[int] = []

    def now(self) -> float:
        return NOW

    def reports(self, now: float) -> list[object]:
        return list(self.engine.reports(now))


def _engine() -> SLOEngine:
    engine = SLOEngine(
        [
            slo("tasks", labels=["agent.id"]),
            slo("llm", sli={"kind": "llm_success"}, target=0.995),
            slo("by-model", labels=["agent.id", "gen_ai.request.model"]),
        ]
    )
    for minute in range(0, 200, 7):
        at = DAY0 + minute * MINUTE
        for agent in range(40):
            attrs = {"agent.id": f"a{agent}"}
            error = (agent + minute) % 11 == 0
            engine.observe(span(error=error, attrs=attrs), at)
            engine.observe(span(AgentSpanKind.LLM_INFERENCE, error=agent == 3, attrs=attrs), at)
    return engine


def _samples(text: str) -> dict[str, tuple[str, str, list[tuple[str, tuple, float]]]]:
    return {
        family.name: (
            family.type,
            family.documentation,
            sorted((s.name, tuple(sorted(s.labels.items())), s.value) for s in family.samples),
        )
        for family in text_string_to_metric_families(text)
    }


def _registries() -> tuple[CollectorRegistry, CollectorRegistry]:
    """Two registries over the same engine: one read as before (collect on the loop), one
    through the off-loop exposition."""
    engine = _engine()
    registries = (CollectorRegistry(), CollectorRegistry())
    for registry in registries:
        SLOMetrics(registry).runtime = lambda: Runtime(engine)  # type: ignore[assignment,return-value]
    return registries


def test_the_exposition_off_the_loop_is_the_one_collected_on_it() -> None:
    on_loop, off_loop = _registries()
    before = generate_latest(on_loop).decode()
    after = asyncio.run(exposition(off_loop)).decode()
    assert after == before  # the SLO families alone: the same text, byte for byte
    samples = _samples(after)
    assert len(samples["agent_sre_slo_events"][2]) == 2 * (40 + 1 + 40)  # good, bad each
    assert 'agent_id="a3"' in after and 'slo="llm"' in after


def test_the_slo_families_appear_once_next_to_the_other_collectors() -> None:
    from prometheus_client import Gauge

    on_loop, off_loop = _registries()
    for registry in (on_loop, off_loop):
        Gauge("agent_sre_other", "Another collector.", registry=registry).set(3)
    before = _samples(generate_latest(on_loop).decode())
    after_text = asyncio.run(exposition(off_loop)).decode()
    assert _samples(after_text) == before
    assert after_text.count("# TYPE agent_sre_slo_burn_rate gauge") == 1


def test_the_reports_are_built_in_a_worker_thread() -> None:
    engine = _engine()
    threads: list[str] = []
    reports_from = SLOEngine.reports_from

    def spy(gathered, now):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        return reports_from(gathered, now)

    registry = CollectorRegistry()
    SLOMetrics(registry).runtime = lambda: Runtime(engine)  # type: ignore[assignment,return-value]
    SLOEngine.reports_from = staticmethod(spy)  # type: ignore[method-assign,assignment]
    try:
        asyncio.run(exposition(registry))
    finally:
        SLOEngine.reports_from = staticmethod(reports_from)  # type: ignore[method-assign]
    assert threads and threading.main_thread().name not in threads


def test_reports_from_gathered_counts_equal_reports() -> None:
    engine = _engine()
    assert engine.reports_from(engine.gather(NOW), NOW) == engine.reports(NOW)
    later = NOW + 5 * HOUR  # buckets closed since: gather advances them as reports did
    assert engine.reports_from(engine.gather(later), later) == _engine().reports(later)
