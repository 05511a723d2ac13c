"""The rollout metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


class DeliveryMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "agent_sre_rollout_requests",
            "Proxied calls taking part in a rollout, by variant (baseline, candidate, shadow) "
            "and result (success, error).",
            ["rollout", "variant", "result"],
            registry=registry,
        )
        self.weight = Gauge(
            "agent_sre_rollout_weight",
            "Share of tasks (of calls mirrored, in shadow mode) each variant takes, 0 to 1.",
            ["rollout", "variant"],
            registry=registry,
        )
        self.phase = Gauge(
            "agent_sre_rollout_phase",
            "Phase of each rollout: 1 progressing, 2 paused, 3 promoted, 4 rolled back, 5 aborted.",
            ["rollout"],
            registry=registry,
        )
        self.shadow_cost = Counter(
            "agent_sre_rollout_shadow_cost_usd",
            "What calls mirrored to a shadow candidate cost (not charged to any budget).",
            ["rollout"],
            registry=registry,
        )
