from __future__ import annotations

from typing import Any

import pytest
import yaml

from agent_sre.slo.compare import compare_slo_sets
from agent_sre.slo.rules import generate_prometheus_rules, rules_yaml
from tests.unit.slo.helpers import slo


def rules_by_name(rules: dict[str, Any]) -> dict[str, dict[str, Any]]:
    groups = rules["groups"]
    assert isinstance(groups, list)
    return {
        rule.get("record") or f"{rule['alert']}:{rule['labels']['long_window']}": rule
        for group in groups
        for rule in group["rules"]
    }


def test_each_slo_gets_sloth_style_records_and_multiwindow_alerts() -> None:
    rules = generate_prometheus_rules([slo("chat", target=0.999, labels=["agent.id"])])
    assert [g["name"] for g in rules["groups"]] == [
        "agent-sre-slo-chat-sli-recordings",
        "agent-sre-slo-chat-meta-recordings",
        "agent-sre-slo-chat-alerts",
    ]
    by_name = rules_by_name(rules)
    assert [n for n in by_name if n.startswith("slo:sli_error")] == [
        f"slo:sli_error:ratio_rate{w}" for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")
    ]
    five = by_name["slo:sli_error:ratio_rate5m"]
    assert five["labels"] == {"slo": "chat", "window": "5m"}
    assert (
        'sum by (slo, agent_id) (increase(agent_sre_slo_events_total{slo="chat",result="bad"}[5m]))'
        in five["expr"]
    )
    assert by_name["slo:objective:ratio"]["expr"] == "vector(0.999)"
    assert by_name["slo:error_budget:ratio"]["expr"] == "vector(0.001)"
    assert by_name["slo:time_period:days"]["expr"] == "vector(30)"
    assert "ratio_rate30d" in by_name["slo:period_burn_rate:ratio"]["expr"]
    assert by_name["slo:period_error_budget_remaining:ratio"]["expr"] == (
        '1 - slo:period_burn_rate:ratio{slo="chat"}'
    )
    page = by_name["AgentSREErrorBudgetBurn:1h"]
    assert page["labels"] == {
        "slo": "chat",
        "severity": "page",
        "long_window": "1h",
        "short_window": "5m",
    }
    assert page["expr"].count("> (14.4 * 0.001)") == 2
    assert "ratio_rate1h" in page["expr"] and "ratio_rate5m" in page["expr"]
    assert by_name["AgentSREErrorBudgetBurn:3d"]["expr"].count("> (1 * 0.001)") == 2


def test_overrides_change_the_windows_and_no_alerting_means_no_alert_group() -> None:
    spec = slo(
        "x",
        window="7d",
        alerting=[{"severity": "ticket", "long": "12h", "short": "1h", "factor": 2}],
    )
    names = list(rules_by_name(generate_prometheus_rules([spec])))
    assert [n for n in names if n.startswith("slo:sli_error")] == [
        "slo:sli_error:ratio_rate5m",
        "slo:sli_error:ratio_rate1h",
        "slo:sli_error:ratio_rate12h",
        "slo:sli_error:ratio_rate7d",
    ]
    groups = generate_prometheus_rules([slo("quiet", alerting=[])])["groups"]
    assert [g["name"] for g in groups] == [
        "agent-sre-slo-quiet-sli-recordings",
        "agent-sre-slo-quiet-meta-recordings",
    ]


def test_rules_render_as_yaml_that_reads_back_the_same() -> None:
    rules = generate_prometheus_rules([slo("a"), slo("b")])
    text = rules_yaml(rules)
    assert "expr: |" in text
    assert yaml.safe_load(text) == rules


def test_duplicate_names_cannot_make_rules() -> None:
    with pytest.raises(ValueError, match="already the name"):
        generate_prometheus_rules([slo("a"), slo("a")])


def test_compare_reports_removed_slos_and_lowered_targets_only() -> None:
    old = [slo("kept", target=0.99), slo("lowered", target=0.999), slo("gone")]
    new = [
        slo("kept", target=0.995, window="28d", sli={"kind": "llm_success"}),
        slo("lowered", target=0.99),
        slo("added", target=0.5),
    ]
    assert compare_slo_sets(old, new) == [
        "slo 'lowered': target lowered from 0.999 to 0.99",
        "slo 'gone' was removed",
    ]
    assert compare_slo_sets(new, new) == []
    assert compare_slo_sets([], new) == []
