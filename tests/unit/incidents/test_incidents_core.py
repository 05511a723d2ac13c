"""The incidents core on plain values: correlation, dedup, escalation, lifecycle, rules with
cool-downs and dry-run, payload shapes, postmortems, and the configuration's errors."""

from __future__ import annotations

from typing import Any

import pytest

from agent_sre.alerts import payloads
from agent_sre.config import ConfigError, parse_config
from agent_sre.incidents.book import IncidentBook
from agent_sre.incidents.model import Incident
from agent_sre.incidents.postmortem import postmortem
from agent_sre.incidents.rules import RuleBook
from agent_sre.incidents.spec import IncidentsConfig
from agent_sre.signals import Severity, Signal, SignalState

T0 = 1_700_000_000.0


def sig(
    at: float,
    severity: Severity = Severity.CRITICAL,
    state: SignalState = SignalState.FIRING,
    type_: str = "slo_status",
    source: str = "slo",
    **labels: str,
) -> Signal:
    return Signal(type_, source, severity, at, f"{type_} {labels}", labels or {"slo": "llm"},
                  state, 0.5, {"trace_ids": ["t1"]})  # fmt: skip


def book(**config: Any) -> IncidentBook:
    return IncidentBook(IncidentsConfig.model_validate(config))


def test_repeats_are_deduped_louder_signals_escalate_and_resolution_closes() -> None:
    incidents = book()
    [opened] = incidents.observe(sig(T0, Severity.WARNING), T0)
    assert opened.event == "opened"
    assert [c.event for c in incidents.observe(sig(T0 + 1, Severity.WARNING), T0 + 1)] == [
        "deduped"
    ]
    [escalated] = incidents.observe(sig(T0 + 2), T0 + 2)
    assert escalated.event == "escalated"
    assert escalated.previous_severity == "warning"
    incident = escalated.incident
    assert incident.severity is Severity.CRITICAL
    assert incident.signals == 3
    assert [e.kind for e in incident.timeline] == ["signal", "signal", "escalated"]
    assert incident.slos == ["llm"]
    assert incident.traces == ["t1"]
    [resolved] = incidents.observe(sig(T0 + 60, state=SignalState.RESOLVED), T0 + 60)
    assert resolved.event == "resolved"
    assert incident.resolved_by == "signals"
    assert incident.duration(T0 + 999) == 60
    # a resolved signal nobody is waiting for changes nothing; quiet signals are ignored
    assert incidents.observe(sig(T0 + 61, state=SignalState.RESOLVED), T0 + 61) == []
    assert incidents.observe(sig(T0 + 62, Severity.INFO), T0 + 62) == []


def test_correlation_window_and_grouping_labels() -> None:
    incidents = book(correlation_window="5m")
    first = incidents.observe(sig(T0, slo="a"), T0)[0].incident
    assert incidents.observe(sig(T0 + 60, slo="b"), T0 + 60)[0].incident is first
    later = incidents.observe(sig(T0 + 60 + 301, slo="c"), T0 + 361)[0]
    assert later.event == "opened"
    assert later.incident is not first

    grouped = book(group_by=["agent_id"])
    one = grouped.observe(sig(T0, type_="budget_exhausted", source="budgets", agent_id="x"), T0)
    two = grouped.observe(sig(T0 + 1, type_="circuit_state", source="cb", agent_id="x"), T0 + 1)
    three = grouped.observe(sig(T0 + 2, type_="circuit_state", source="cb", agent_id="y"), T0 + 2)
    assert two[0].incident is one[0].incident
    assert three[0].event == "opened"


def test_operators_quiet_resolution_and_reload_of_ids() -> None:
    incidents = book(resolve_when_quiet="10m")
    incident = incidents.observe(sig(T0), T0)[0].incident
    incidents.acknowledge(incident.id, T0 + 5, "ana")
    assert incident.state.value == "acknowledged"
    assert incidents.tick(T0 + 599) == []
    [quiet] = incidents.tick(T0 + 600)
    assert quiet.incident.resolved_by == "quiet"

    again = IncidentBook(IncidentsConfig())
    again.load([Incident.from_dict(incident.to_dict())])
    assert again.incidents[incident.id].to_dict() == incident.to_dict()
    assert again.observe(sig(T0 + 700), T0 + 700)[0].incident.id == "inc-2"
    assert again.resolve("inc-2", T0 + 701, "bob").incident.resolved_by == "bob"
    assert again.forget_resolved_before(T0 + 10_000) == ["inc-1", "inc-2"]


def test_rules_match_cool_down_render_labels_and_dry_run() -> None:
    config = IncidentsConfig.model_validate(
        {
            "rules": [
                {
                    "name": "block",
                    "match": {"types": ["budget_exhausted"], "labels": {"budget": "daily"}},
                    "actions": [{"action": "block_agent", "params": {"agent_id": "{agent.id}"}}],
                    "cooldown": "10m",
                },
                {"name": "rehearse", "match": {"min_severity": "critical"}, "when": ["opened"],
                 "actions": [{"action": "stop_chaos"}], "dry_run": True},
            ]
        }
    )  # fmt: skip
    incidents = IncidentBook(config)
    rules = RuleBook(config.rules)
    s = sig(T0, type_="budget_exhausted", source="budgets", budget="daily", **{"agent.id": "a"})
    change = incidents.observe(s, T0)[0]
    planned = rules.plan(change, T0)
    assert [(p.rule, p.action, p.params, p.dry_run, p.skipped) for p in planned] == [
        ("block", "block_agent", {"agent_id": "a"}, False, ""),
        ("rehearse", "stop_chaos", {}, True, ""),
    ]
    # a flapping signal cannot storm: the same action waits for its cool-down
    again = incidents.observe(s, T0 + 60)[0]
    assert rules.plan(again, T0 + 60)[0].skipped.startswith("cooling down")
    assert rules.plan(again, T0 + 601)[0].skipped == ""
    # a label the template needs is missing: skipped, and says which
    other = incidents.observe(sig(T0, type_="budget_exhausted", budget="daily"), T0)[0]
    assert rules.plan(other, T0)[0].skipped == "the signal has no label 'agent.id'"
    # a reload keeps the cool-downs of the rules that stay
    fresh = RuleBook(config.rules)
    fresh.carry_over(rules)
    assert fresh.plan(again, T0 + 602)[0].skipped.startswith("cooling down")


def test_payload_shapes() -> None:
    incident = book().observe(sig(T0, agent_id="a1", slo="llm"), T0)[0].incident
    alert = payloads.alertmanager_alert(incident, "n1", T0 + 10, 60, "http://x:8791/")
    assert alert["labels"] == {
        "alertname": "AgentSRESloStatus", "severity": "critical", "node": "n1",
        "incident": "inc-1", "source": "slo", "agent": "a1", "slo": "llm",
    }  # fmt: skip
    assert alert["startsAt"] == "2023-11-14T22:13:20.000+00:00"
    assert alert["endsAt"] == "2023-11-14T22:17:30.000+00:00"  # 4 re-sends ahead
    assert alert["generatorURL"] == "http://x:8791/v1/incidents/inc-1"
    ended = payloads.alertmanager_alert(incident, "n1", T0 + 10, 60, ended=True)
    assert ended["endsAt"] == "2023-11-14T22:13:30.000+00:00"

    trigger = payloads.pagerduty_event(incident, "opened", "n1", "key", "")
    assert trigger["event_action"] == "trigger"
    assert set(trigger["payload"]) >= {"summary", "source", "severity"}
    ack = payloads.pagerduty_event(incident, "acknowledged", "n1", "key", "")
    assert ack == {"routing_key": "key", "event_action": "acknowledge",
                   "dedup_key": "agent-sre/n1/inc-1"}  # fmt: skip

    body = b'{"a":1}'
    headers = payloads.sign_webhook("s3cret", int(T0), body)
    assert payloads.verify_webhook("s3cret", headers, body, T0 + 10)
    assert not payloads.verify_webhook("s3cret", headers, body + b" ", T0 + 10)
    assert not payloads.verify_webhook("s3cret", headers, body, T0 + 3600)  # replayed later
    assert not payloads.verify_webhook("s3cret", {}, body, T0)
    slack = payloads.slack_message(incident, "resolved", "n1", "")
    assert slack["text"].startswith(":white_check_mark: [resolved] inc-1")


def test_postmortem_has_every_section() -> None:
    incident = book().observe(sig(T0, agent_id="a1", slo="llm"), T0)[0].incident
    incident.note(T0 + 1, "action", "rule r: agent a1 blocked")
    text = postmortem(incident, T0 + 90)
    for part in ("# Postmortem: inc-1", "- Duration: 90s", "SLOs affected: llm",
                 "Agents: a1", "## Timeline", "`t1`", "rule r: agent a1 blocked",
                 "## Cause", "## Follow-ups"):  # fmt: skip
        assert part in text


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("incidents: {correlation_window: 5x}", "incidents.correlation_window"),
        ("incidents: {rules: [{name: r, actions: []}]}", "incidents.rules[0].actions"),
        ("incidents: {rules: [{name: r, actions: [{action: a}]}, {name: r, actions: "
         "[{action: b}]}]}", "used twice"),
        ("incidents: {circuit_breakers: [{name: b, error_ratio: 2}]}", "error_ratio"),
        ("incidents: {circuit_breakers: [{name: b, open_for: 0}]}", "longer than 0s"),
        ("alerting: {receivers: [{name: p, type: pagerduty}]}", "needs routing_key"),
        ("alerting: {receivers: [{name: w, type: webhook}]}", "needs url"),
        ("alerting: {receivers: [{name: w, type: webhook, url: ftp://x}]}", "http://"),
        ("alerting: {receivers: [{name: w, type: teams, url: http://x}]}", "alerting.receivers"),
        ("incidents: {circuit_breakers: [{name: b, routes: [nope]}]}",
         "incidents.circuit_breakers[0].routes[0]: no proxy route is named 'nope'"),
        ("incidents: {rules: [{name: r, actions: [{action: notify, params: {receivers: x}}]}]}",
         "no alerting receiver is named 'x'"),
        ("alerting: {receivers: [{name: w, type: slack, url: http://x}, {name: w, type: slack, "
         "url: http://y}]}", "used twice"),
    ],
)  # fmt: skip
def test_configuration_errors_say_where_and_what(yaml_text: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(yaml_text, "t.yaml")
    assert message in str(error.value)
