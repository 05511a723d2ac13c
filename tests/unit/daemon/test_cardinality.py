"""Cardinality: label values from clients are cut to a length, and one metric keeps a
bounded number of series whatever agents x models clients make up."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from agent_sre_daemon.metrics import (
    MAX_LABEL_LENGTH,
    MAX_SERIES_PER_METRIC,
    OVERFLOW_LABEL,
    BoundedLabel,
    BoundedSeries,
)
from agent_sre_daemon.proxy.metrics import ProxyMetrics


def series(registry: CollectorRegistry, name: str) -> list[dict[str, str]]:
    return [
        sample.labels
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == name
    ]


def test_a_64_kib_model_name_makes_a_short_label() -> None:
    registry = CollectorRegistry()
    metrics = ProxyMetrics(registry)
    for i in range(50):
        metrics.llm_usage("agent", f"{i}" + "m" * 65536, 1, 1, 0.01)
        metrics.unpriced_call(f"{i}" + "u" * 65536)
    exposition = generate_latest(registry)
    assert len(exposition) < 100_000
    for labels in series(registry, "agent_sre_llm_cost_usd_total"):
        assert len(labels["model"]) <= MAX_LABEL_LENGTH


def test_series_per_metric_are_capped() -> None:
    registry = CollectorRegistry()
    metrics = ProxyMetrics(registry)
    for agent in range(100):
        for model in range(60):  # 6000 combinations, each label under its own cap
            metrics.llm_usage(f"agent-{agent}", f"model-{model}", 1, 2, 0.5)
    cost = series(registry, "agent_sre_llm_cost_usd_total")
    assert len(cost) == MAX_SERIES_PER_METRIC + 1
    assert {"agent": OVERFLOW_LABEL, "model": OVERFLOW_LABEL} in cost
    total = sum(
        sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == "agent_sre_llm_cost_usd_total"
    )
    assert total == 6000 * 0.5  # nothing lost, only merged


def test_bounded_label_and_series_units() -> None:
    label = BoundedLabel(2, max_length=5)
    assert label("abcdefgh") == "abcd~"
    assert label("b") == "b"
    assert label("c") == OVERFLOW_LABEL
    assert label("abcdefxx") == "abcd~"  # same cut value: already seen
    cap = BoundedSeries(1)
    assert cap(("a", "b")) == ("a", "b")
    assert cap(("a", "c")) == (OVERFLOW_LABEL, OVERFLOW_LABEL)


def test_a_credential_in_an_id_never_reaches_the_exposition() -> None:
    """Agent ids and model names are whatever a client sends: one holding a key (here in both,
    and one long enough to be cut) is redacted at the label gate, once, and counted as usual."""
    secret = "sk-proj-" + "A1b2C3d4" * 6
    registry = CollectorRegistry()
    metrics = ProxyMetrics(registry)
    for _ in range(3):
        metrics.llm_usage(f"agent {secret}", secret + "x" * 200, 1, 1, 0.01)
        metrics.unpriced_call(f"model-{secret}")
    exposition = generate_latest(registry).decode()
    assert "A1b2C3d4" not in exposition
    assert "[REDACTED]" in exposition
    cost = series(registry, "agent_sre_llm_cost_usd_total")
    assert len(cost) == 1 and all(len(v) <= MAX_LABEL_LENGTH for v in cost[0].values())
