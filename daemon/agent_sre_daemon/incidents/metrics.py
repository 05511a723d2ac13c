from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


class IncidentMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.open = Gauge(
            "agent_sre_incidents_open",
            "Incidents open (or acknowledged), by severity.",
            ["severity"],
            registry=registry,
        )
        self.opened = Counter(
            "agent_sre_incidents_opened_total",
            "Incidents opened, by severity at opening.",
            ["severity"],
            registry=registry,
        )
        self.resolved = Counter(
            "agent_sre_incidents_resolved_total",
            "Incidents resolved, by who resolved them (signals, operator, quiet, evicted: closed "
            "to make room past the cap of open incidents).",
            ["by"],
            registry=registry,
        )
        self.time_to_resolve = Histogram(
            "agent_sre_incident_time_to_resolve_seconds",
            "Seconds from an incident's opening to its resolution.",
            buckets=(60, 300, 900, 1800, 3600, 3 * 3600, 12 * 3600, 86400, 7 * 86400),
            registry=registry,
        )
        self.actions = Counter(
            "agent_sre_incident_actions_total",
            "Actions of automatic responses, by action and outcome (ran, dry_run, failed, "
            "unavailable, skipped, cooling_down).",
            ["action", "outcome"],
            registry=registry,
        )
        self.sent = Counter(
            "agent_sre_notifications_sent_total",
            "Notifications delivered, by receiver.",
            ["receiver"],
            registry=registry,
        )
        self.failed = Counter(
            "agent_sre_notifications_failed_total",
            "Notification attempts that failed, by receiver (no answer, a 5xx, 408 and 429 "
            "are retried; a redirect or another 4xx is final).",
            ["receiver"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "agent_sre_notifications_dead_lettered_total",
            "Notifications given up on and put in the dead letter, by receiver and reason "
            "(refused, redirect, gave_up, receiver_gone).",
            ["receiver", "reason"],
            registry=registry,
        )
        self.dead_letters = Gauge(
            "agent_sre_notifications_dead_letters",
            "Notifications the dead letter holds (GET /v1/notifications/dead).",
            registry=registry,
        )
        self.outbox = Gauge(
            "agent_sre_notifications_pending",
            "Notifications waiting in the durable outbox.",
            registry=registry,
        )
        self.circuit_state = Gauge(
            "agent_sre_circuit_state",
            "Circuit breaker state by target (0 closed, 1 half-open, 2 open).",
            ["target"],
            registry=registry,
        )
        self.circuit_rejected = Counter(
            "agent_sre_circuit_rejected_total",
            "Proxied calls failed fast because their circuit was open.",
            ["target"],
            registry=registry,
        )
