"""The daemon's own Prometheus metrics (names are public: add, never rename)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from agent_sre.replay.redaction import Redactor

OVERFLOW_LABEL = "__overflow__"
MAX_AGENT_LABELS = 1000
MAX_MODEL_LABELS = 200
MAX_ROLE_LABELS = 16
"""Made-up ``agent_sre.role`` values counted apart (beside the daemon's own two)."""
MAX_LABEL_LENGTH = 128
"""Longest label value taken from untrusted input; longer ones are cut (ending in ``~``)."""
MAX_SERIES_PER_METRIC = 2000
"""Label sets one metric keeps from untrusted input (agents x models): per-label caps alone
would allow 1000 x 200."""


_REDACTOR = Redactor()
"""Credentials by shape (the label gate runs it once a new value)."""


class BoundedLabel:
    """Caps the distinct values a label takes from untrusted input (agent ids, model names,
    roles): values are cut to ``max_length`` characters, a credential in one is redacted (a
    client can put anything in an id), and past ``limit`` values newcomers are counted under
    ``__overflow__`` so a client cannot grow the exposition without bound."""

    def __init__(self, limit: int, max_length: int = MAX_LABEL_LENGTH) -> None:
        self.limit = limit
        self.max_length = max_length
        self._labels: dict[str, str] = {}
        """Each value taken (cut) -> its label; a value is redacted once, when first seen."""

    def __call__(self, value: str) -> str:
        cut = self._cut(value)
        label = self._labels.get(cut)
        if label is not None:
            return label
        if len(self._labels) >= self.limit:
            return OVERFLOW_LABEL
        label = self._labels[cut] = self._cut(_REDACTOR.redact_text(value))
        return label

    def _cut(self, value: str) -> str:
        if len(value) > self.max_length:
            return value[: self.max_length - 1] + "~"
        return value


class BoundedSeries:
    """Caps the label sets (series) one metric takes: past ``limit``, a new combination is
    counted under ``__overflow__`` for every label."""

    def __init__(self, limit: int = MAX_SERIES_PER_METRIC) -> None:
        self.limit = limit
        self._seen: set[tuple[str, ...]] = set()

    def __call__(self, labels: tuple[str, ...]) -> tuple[str, ...]:
        if labels in self._seen:
            return labels
        if len(self._seen) < self.limit:
            self._seen.add(labels)
            return labels
        return (OVERFLOW_LABEL,) * len(labels)


class PipelineMetrics:
    """Counters and gauges of the OTLP pipeline, registered on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.accepted_spans = Counter(
            "agent_sre_receiver_accepted_spans_total",
            "Spans accepted by a receiver (and queued when forwarding is on).",
            ["protocol"],
            registry=registry,
        )
        self.refused_spans = Counter(
            "agent_sre_receiver_refused_spans_total",
            "Spans refused by a receiver, by reason.",
            ["protocol", "reason"],
            registry=registry,
        )
        self.accepted_items = Counter(
            "agent_sre_receiver_accepted_items_total",
            "Metrics (not data points) and log records accepted, by signal.",
            ["protocol", "signal"],
            registry=registry,
        )
        self.refused_requests = Counter(
            "agent_sre_receiver_refused_requests_total",
            "Requests refused by a receiver, by signal and reason.",
            ["protocol", "signal", "reason"],
            registry=registry,
        )
        self.spans_by_kind = Counter(
            "agent_sre_spans_total",
            "Spans received, by agent span kind (OTHER when no convention applies).",
            ["kind"],
            registry=registry,
        )
        self.ignored_values = Counter(
            "agent_sre_spans_ignored_values_total",
            "Spans kept with an attribute value ignored as unusable (NaN or infinite numbers).",
            registry=registry,
        )
        self.second_view_spans = Counter(
            "agent_sre_spans_second_view_total",
            "Spans forwarded but not counted because another span counts the same LLM call "
            "(agent_sre.role: gateway, duplicate), by role; roles a client made up: 16 values, "
            "then __overflow__.",
            ["role"],
            registry=registry,
        )
        self.unpriced_spans = Counter(
            "agent_sre_spans_unpriced_total",
            "Received LLM spans with token usage whose model has no known price.",
            ["model"],
            registry=registry,
        )
        self.deferred_pricing = Counter(
            "agent_sre_spans_pricing_deferred_total",
            "Received LLM spans forwarded without a cost because their model had not been looked "
            "up yet and the lookup budget (20 never-seen models a second after a burst of 50) "
            "was spent; the model is looked up on a later span.",
            registry=registry,
        )
        self.exporter_sent_spans = Counter(
            "agent_sre_exporter_sent_spans_total",
            "Spans upstream acknowledged.",
            registry=registry,
        )
        self.exporter_sent_requests = Counter(
            "agent_sre_exporter_sent_requests_total",
            "Requests upstream acknowledged, by signal.",
            ["signal"],
            registry=registry,
        )
        self.exporter_failed_requests = Counter(
            "agent_sre_exporter_failed_requests_total",
            "Failed send attempts to upstream, by reason (a retried request counts each time).",
            ["reason"],
            registry=registry,
        )
        self.exporter_rejected_items = Counter(
            "agent_sre_exporter_rejected_items_total",
            "Items upstream rejected through partial_success, by signal.",
            ["signal"],
            registry=registry,
        )
        self.dropped_items = Counter(
            "agent_sre_dropped_items_total",
            "Items the daemon dropped after accepting them, by signal and reason.",
            ["signal", "reason"],
            registry=registry,
        )
        self.state_set_aside = Counter(
            "agent_sre_state_set_aside_total",
            "Saved state set aside at a start or reload (a damaged file, one of another "
            "version, an item naming what the configuration no longer has), by store file.",
            ["store"],
            registry=registry,
        )
        self.config_reloads = Counter(
            "agent_sre_config_reloads_total",
            "Configuration reloads, by result (ok or error).",
            ["result"],
            registry=registry,
        )
