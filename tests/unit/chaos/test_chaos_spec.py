"""The ``chaos:`` section: defaults, templates, and errors that say file, line and field."""

from __future__ import annotations

import pytest

from agent_sre.chaos.headers import HeaderFaultError, parse_fault_header
from agent_sre.chaos.templates import TEMPLATES
from agent_sre.config import ConfigError, parse_config

ROUTES = """
proxy:
  routes:
    - {name: openai, prefix: /openai, upstream: "http://x", api: openai}
slos:
  - {name: llm, target: 0.99, window: 30d, sli: {kind: llm_success}}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(ROUTES + text, "cfg.yaml", {})
    return info.value.problems


def test_chaos_is_off_by_default_and_header_faults_too() -> None:
    config = parse_config("{}", "cfg.yaml", {})
    assert config.chaos.enabled is False
    assert config.chaos.allow_header_faults is False
    assert config.chaos.experiments == []


def test_an_experiment_loads_with_durations_and_a_template() -> None:
    config = parse_config(
        ROUTES
        + """
chaos:
  enabled: true
  experiments:
    - name: e1
      targets: {routes: [openai], share: 0.5}
      faults: [{type: latency, delay: 1500ms, jitter: 0.5, probability: 0.2}]
      duration: 10m
      blackout: [{days: [sat, sun]}]
      abort_when: [{slo: llm, burn_rate_above: 14.4, window: 1h}]
    - {name: e2, template: error-storm, duration: 1m}
""",
        "cfg.yaml",
        {},
    )
    e1, e2 = config.chaos.experiments
    assert e1.duration == 600 and e1.faults[0].delay == 1.5 and e1.faults[0].jitter == 0.5
    assert e1.abort_when[0].window == 3600 and e1.abort_when[0].reason == "slo_burn_rate"
    assert e2.duration == 60  # the experiment's own key wins over the template's
    assert [f.status for f in e2.faults] == [500, 503]


def test_every_template_loads() -> None:
    for name in TEMPLATES:
        config = parse_config(
            f"chaos: {{experiments: [{{name: t, template: {name}}}]}}\n", "cfg.yaml", {}
        )
        assert config.chaos.experiments[0].faults


def test_bad_experiments_say_where_and_what() -> None:
    found = problems(
        """chaos:
  experiments:
    - name: e1
      faults: [{type: meteor}]
    - name: e2
      faults: [{type: error, status: 200}]
    - name: e3
      faults: [{type: error}]
      abort_when: [{burn_rate_above: 2}]
    - name: e4
      faults: [{type: error}]
      abort_when: [{error_ratio_above: 0.5, spend_above_usd: 1}]
    - {name: e5, template: nope}
    - name: e6
      faults: [{type: schema_drift}]
    - {name: e7, faults: [{type: latency, delay: soon}]}
    - {name: e8, faults: [{type: latency}], blackout: [{start: "25:00"}]}
    - {name: e9}
"""
    )
    text = "\n".join(found)
    assert "cfg.yaml:10: chaos.experiments[0].faults[0].type: Input should be" in text
    assert "chaos.experiments[1].faults[0].status" in text
    assert "burn_rate_above needs slo" in text
    assert "give exactly one of" in text and "error_ratio_above, spend_above_usd" in text
    assert "template 'nope' is not one of" in text
    assert "schema_drift needs field" in text
    assert "chaos.experiments[6].faults[0].delay" in text
    assert "'25:00' is not a time of day" in text
    assert "chaos.experiments[8]: give faults (at least one) or a template" in text


def test_names_an_experiment_uses_must_exist() -> None:
    found = problems(
        """chaos:
  experiments:
    - name: e1
      targets: {routes: [opneai]}
      faults: [{type: error}]
      steady_state: {slos_healthy: [lmm]}
      abort_when: [{slo: nope, burn_rate_above: 2}]
    - {name: e1, faults: [{type: error}]}
"""
    )
    text = "\n".join(found)
    assert "experiment name 'e1' is given twice" in text
    found = problems(
        """chaos:
  experiments:
    - name: e1
      targets: {routes: [opneai]}
      faults: [{type: error}]
      steady_state: {slos_healthy: [lmm]}
      abort_when: [{slo: nope, burn_rate_above: 2}]
"""
    )
    assert found == [
        "cfg.yaml:10: chaos.experiments[0].targets.routes[0]: no proxy route is named 'opneai' "
        "(routes: openai)",
        "cfg.yaml:12: chaos.experiments[0].steady_state.slos_healthy[0]: no SLO is named 'lmm'",
        "cfg.yaml:13: chaos.experiments[0].abort_when[0].slo: no SLO is named 'nope'",
    ]


def test_fault_headers_parse_or_say_what_is_wrong() -> None:
    fault = parse_fault_header("error; status=529")
    assert (fault.type, fault.status) == ("error", 529)
    assert parse_fault_header("latency;delay=2s").delay == 2.0
    with pytest.raises(HeaderFaultError, match="status"):
        parse_fault_header("error; status=99")
    with pytest.raises(HeaderFaultError, match="not key=value"):
        parse_fault_header("error; 529")
    with pytest.raises(HeaderFaultError, match="probability"):
        parse_fault_header("error; probability=0.5")
    with pytest.raises(HeaderFaultError, match="type"):
        parse_fault_header("meteor")
