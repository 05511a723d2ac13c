"""The chaos engine's Prometheus metrics (names are public: add, never rename)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


class ChaosMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.faults = Counter(
            "agent_sre_chaos_faults_injected",
            "Faults injected into proxied calls, by experiment (``header`` for per-call "
            "header faults) and fault type.",
            ["experiment", "fault"],
            registry=registry,
        )
        self.active = Gauge(
            "agent_sre_chaos_experiment_active",
            "1 while an experiment injects faults.",
            ["experiment"],
            registry=registry,
        )
        self.aborts = Counter(
            "agent_sre_chaos_aborts",
            "Experiments stopped by an abort rule, by reason (slo_burn_rate, slo_budget, "
            "error_ratio, spend).",
            ["experiment", "reason"],
            registry=registry,
        )
        self.targeted = Counter(
            "agent_sre_chaos_calls_targeted",
            "Proxied calls matching a running experiment's targets.",
            ["experiment"],
            registry=registry,
        )
