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


def test_config_json_schema_is_current() -> None:
    import json

    from agent_sre.config import config_json_schema

    shipped = json.loads((ROOT / "config" / "agent-sre.schema.json").read_text())
    assert shipped == config_json_schema(), (
        "regenerate: agent-sre schema > config/agent-sre.schema.json"
    )


def test_shipped_config_validates_against_the_schema() -> None:
    import json

    import jsonschema
    import yaml

    schema = json.loads((ROOT / "config" / "agent-sre.schema.json").read_text())
    jsonschema.validate(yaml.safe_load((ROOT / "config" / "agent-sre.yaml").read_text()), schema)
