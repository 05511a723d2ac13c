"""The fleet engine's Prometheus metrics (names are public: add, never rename)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


class FleetMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.publishes = Counter(
            "agent_sre_fleet_publishes",
            "This node's summary written to the shared store, by result (ok, error).",
            ["result"],
            registry=registry,
        )
        self.skipped = Counter(
            "agent_sre_fleet_summaries_skipped",
            "Summaries read from the shared store and left out of the fleet view, by reason "
            "(corrupt: refused at the gate; mismatched: filed under another node's key).",
            ["reason"],
            registry=registry,
        )
        self.nodes = Gauge(
            "agent_sre_fleet_nodes",
            "Nodes in the last fleet view, by state (up, stale, expired).",
            ["state"],
            registry=registry,
        )
        self.summary_bytes = Gauge(
            "agent_sre_fleet_summary_bytes",
            "Size of this node's last summary as stored (compressed).",
            registry=registry,
        )
        self.store_up = Gauge(
            "agent_sre_fleet_store_up",
            "1 when the last exchange with the shared store worked, 0 when it failed or no "
            "store is configured.",
            registry=registry,
        )
