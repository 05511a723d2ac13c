"""The span of a proxied call cannot be pushed back on anyone: a refusal drops it, counted."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from agent_sre.config import Config
from agent_sre_daemon.clock import ManualClock
from agent_sre_daemon.ingest.pipeline import Pipeline
from tests.support.spans import make_request


def test_a_refused_proxy_span_is_dropped_and_counted() -> None:
    registry = CollectorRegistry()
    pipeline = Pipeline(Config(), {}, Pipeline.register_metrics(registry), ManualClock())
    pipeline.export_call(make_request(2))  # accepted: nothing dropped
    pipeline.accepting = False  # the daemon is stopping
    pipeline.export_call(make_request(2))  # never raises
    dropped = {"signal": "traces", "reason": "proxy_stopping"}
    assert registry.get_sample_value("agent_sre_dropped_items_total", dropped) == 1
    accepted = registry.get_sample_value(
        "agent_sre_receiver_accepted_spans_total", {"protocol": "proxy"}
    )
    assert accepted == 2
