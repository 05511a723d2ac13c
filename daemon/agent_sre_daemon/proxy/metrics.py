"""The proxy's and cost guard's Prometheus metrics (names are public: add, never rename)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge, Histogram

from agent_sre_daemon.evictions import state_evictions
from agent_sre_daemon.metrics import (
    MAX_AGENT_LABELS,
    MAX_MODEL_LABELS,
    BoundedLabel,
    BoundedSeries,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_ADDED_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)


class ProxyMetrics:
    """Every metric of the proxy, registered on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "agent_sre_proxy_requests",
            "Proxied calls by route and HTTP status.",
            ["route", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "agent_sre_proxy_request_duration_seconds",
            "Time from request received to response complete.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.added_latency = Histogram(
            "agent_sre_proxy_added_latency_seconds",
            "Time the proxy itself added to a call (before forwarding and after the upstream "
            "answered).",
            buckets=_ADDED_BUCKETS,
            registry=registry,
        )
        self.sse_oversized = Counter(
            "agent_sre_proxy_sse_oversized_events",
            "Server-sent events longer than the stream tap reads (1 MiB), passed to the "
            "client unread (their usage, if any, is unknown).",
            ["route"],
            registry=registry,
        )
        self.ttft = Histogram(
            "agent_sre_proxy_time_to_first_token_seconds",
            "Time from request received to the first streamed chunk sent to the client.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "agent_sre_llm_tokens",
            "LLM tokens by agent, model and type (input, output).",
            ["agent", "model", "type"],
            registry=registry,
        )
        self.cost = Counter(
            "agent_sre_llm_cost_usd",
            "LLM spend in USD by agent and model.",
            ["agent", "model"],
            registry=registry,
        )
        self.unpriced = Counter(
            "agent_sre_llm_unpriced_requests",
            "LLM calls whose model has no known price (recorded without a cost).",
            ["model"],
            registry=registry,
        )
        self.estimated = Counter(
            "agent_sre_llm_estimated_usage_requests",
            "LLM calls settled from estimated usage (no usage block, or a stream cut short).",
            ["route"],
            registry=registry,
        )
        self.invalid_usage = Counter(
            "agent_sre_llm_invalid_usage_requests",
            "LLM calls whose reported usage was unusable (negative, not a whole number, beyond "
            "the model's limits); settled at their reservation.",
            ["route"],
            registry=registry,
        )
        self.budget_spent = Gauge(
            "agent_sre_budget_spent_usd",
            "Spend in the current window of the budget's subject closest to its limit.",
            ["budget"],
            registry=registry,
        )
        self.budget_limit = Gauge(
            "agent_sre_budget_limit_usd",
            "Limit of each budget (per subject).",
            ["budget"],
            registry=registry,
        )
        self.budget_denied = Counter(
            "agent_sre_budget_denied_requests",
            "Calls refused before reaching the provider, by budget (or kill_switch, "
            "rate_limit, pacing, store).",
            ["budget"],
            registry=registry,
        )
        self.signals = Counter(
            "agent_sre_cost_signals",
            "Cost signals raised, by kind.",
            ["kind"],
            registry=registry,
        )
        self.store_errors = Counter(
            "agent_sre_budget_store_errors",
            "Errors of the budget ledger store.",
            registry=registry,
        )
        self.state_evictions = state_evictions(registry)
        self._per_call: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._per_model: dict[tuple[str, ...], tuple[Any, Any, Any]] = {}
        # agent ids and model names come from clients: bound the label values
        self._agent_label = BoundedLabel(MAX_AGENT_LABELS)
        self._model_label = BoundedLabel(MAX_MODEL_LABELS)
        self._agent_model = BoundedSeries()  # agent x model: tokens and cost

    # hot path: per proxied call. labels() costs a few microseconds each; children are
    # looked up once per label set and kept.

    def call_done(self, route: str, status: int, elapsed: float, added: float | None) -> None:
        key = (route, status)
        children = self._per_call.get(key)
        if children is None:
            children = self._per_call[key] = (
                self.requests.labels(route, str(status)),
                self.duration.labels(route),
            )
        children[0].inc()
        children[1].observe(elapsed)
        if added is not None:
            self.added_latency.observe(added)

    def evicted(self, map_name: str, key: object) -> None:
        """Counts one entry dropped from a bounded map (``OnEvict`` of the core's maps)."""
        self.state_evictions.labels(map_name).inc()

    def unpriced_call(self, model: str) -> None:
        self.unpriced.labels(self._model_label(model)).inc()

    def llm_usage(
        self, agent: str, model: str, input_tokens: int, output_tokens: int, cost: float | None
    ) -> None:
        key = self._agent_model((self._agent_label(agent), self._model_label(model)))
        agent, model = key
        children = self._per_model.get(key)
        if children is None:
            children = self._per_model[key] = (
                self.tokens.labels(agent, model, "input"),
                self.tokens.labels(agent, model, "output"),
                self.cost.labels(agent, model),
            )
        children[0].inc(input_tokens)
        children[1].inc(output_tokens)
        if cost is not None:
            children[2].inc(cost)
