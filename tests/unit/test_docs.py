"""Generated documents stay in step with the code."""

from __future__ import annotations

from pathlib import Path

from agent_sre_daemon import metricsdoc

ROOT = Path(__file__).parents[2]


def test_metrics_doc_is_current() -> None:
    expected = metricsdoc.render()
    actual = (ROOT / "docs" / "metrics.md").read_text()
    assert actual == expected, "regenerate: python -m agent_sre_daemon.metricsdoc > docs/metrics.md"


def test_issue_contract_metric_names_exist() -> None:
    text = metricsdoc.render()
    for name in (
        "agent_sre_receiver_accepted_spans_total",
        "agent_sre_receiver_refused_spans_total",
        "agent_sre_exporter_sent_spans_total",
        "agent_sre_exporter_failed_requests_total",
        "agent_sre_queue_size_bytes",
        "agent_sre_queue_oldest_age_seconds",
        "agent_sre_spans_total",
    ):
        assert f"`{name}`" in text
