"""The certification engine's Prometheus metrics (names are public: add, never rename)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


class CertificationMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.tier = Gauge(
            "agent_sre_certification_tier",
            "The certification tier an agent version holds: 0 none, 1 the lowest tier "
            "(bronze by default), 2 the next (silver), 3 gold... At most "
            "certification.max_metric_series series (the most recently seen versions).",
            ["agent", "version"],
            registry=registry,
        )
        self.versions = Gauge(
            "agent_sre_certification_versions",
            "Agent versions whose evidence is kept (at most certification.max_versions).",
            registry=registry,
        )
        self.changes = Counter(
            "agent_sre_certification_tier_changes",
            "Tier changes of agent versions, by direction (gained, lost).",
            ["direction"],
            registry=registry,
        )
