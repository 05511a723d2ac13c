"""The replay engine's metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


class ReplayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.stored_spans = Counter(
            "agent_sre_replay_stored_spans",
            "Spans written to the trace buffer.",
            registry=registry,
        )
        self.dropped_requests = Counter(
            "agent_sre_replay_dropped_requests",
            "Accepted trace requests the buffer dropped because its writer fell behind.",
            registry=registry,
        )
        self.dropped_calls = Counter(
            "agent_sre_replay_dropped_calls",
            "Captured calls the buffer dropped unwritten: its writer fell behind by"
            " 64 MiB, or the disk was short of room.",
            registry=registry,
        )
        self.evicted_traces = Counter(
            "agent_sre_replay_evicted_traces",
            "Traces dropped from the buffer (retention or size cap).",
            registry=registry,
        )
        self.write_errors = Counter(
            "agent_sre_replay_write_errors",
            "Failed writes of the trace buffer's store.",
            registry=registry,
        )
        self.stored_bytes = Gauge(
            "agent_sre_replay_stored_bytes",
            "Bytes of spans and captured bodies in the trace buffer.",
            registry=registry,
        )
        self.captured_calls = Counter(
            "agent_sre_replay_captured_calls",
            "Proxied calls whose bodies were captured.",
            registry=registry,
        )
        self.redacted_requests = Counter(
            "agent_sre_replay_redacted_requests",
            "Accepted trace requests whose span strings held a secret, redacted before storing.",
            registry=registry,
        )
        self.replayed_calls = Counter(
            "agent_sre_replay_replayed_calls",
            "Proxied calls answered by a replay session, by result (matched, mismatch).",
            ["result"],
            registry=registry,
        )
        self.sessions = Gauge(
            "agent_sre_replay_sessions",
            "Replay sessions open.",
            registry=registry,
        )
