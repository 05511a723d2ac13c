from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from agent_sre.config import ConfigError, parse_config
from agent_sre.slo.alerts import burn_rate_windows
from agent_sre.slo.spec import SLIKind, SLOSpec, slo_set_problems
from agent_sre.tracing.conventions import AgentSpanKind
from tests.unit.slo.helpers import slo


def problems_of(yaml_text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml_text, "slos.yaml")
    return caught.value.problems


def test_a_full_spec_reads_from_yaml_with_its_units() -> None:
    config = parse_config(
        """
slos:
  - name: support-latency
    description: support agent answers fast
    target: 0.995
    window: 28d
    sli:
      kind: latency
      threshold: 2500ms
      match: {agent.id: support, agent.span.kind: [LLM_INFERENCE, TOOL_CALL]}
    labels: [gen_ai.request.model]
    max_label_sets: 20
    alerting:
      - {severity: page, long: 1h, short: 5m, budget_percent: 2}
      - {severity: ticket, long: 1d, short: 2h, factor: 1.5}
""",
        "slos.yaml",
    )
    (spec,) = config.slos
    assert spec.window == 28 * 86400
    assert spec.sli.kind is SLIKind.LATENCY
    assert spec.sli.threshold == 2.5
    assert spec.sli.span_kinds() == {AgentSpanKind.LLM_INFERENCE, AgentSpanKind.TOOL_CALL}
    assert spec.labels == ("gen_ai.request.model",)
    assert spec.error_budget == pytest.approx(0.005)
    page, ticket = burn_rate_windows(spec)
    assert page.factor == pytest.approx(0.02 * 28 * 24 / 1)  # 13.44 for 28d
    assert (page.name, page.short) == ("page-1h", "5m")
    assert ticket.factor == 1.5


def test_default_alerts_scale_with_the_slo_window() -> None:
    factors = [w.factor for w in burn_rate_windows(slo())]
    assert factors == pytest.approx([14.4, 6.0, 3.0, 1.0])
    factors = [w.factor for w in burn_rate_windows(slo(window="7d"))]
    assert factors == pytest.approx([0.02 * 168, 0.05 * 168 / 6, 0.1 * 7, 0.1 * 7 / 3])
    assert [w.name for w in burn_rate_windows(slo())] == [
        "page-1h",
        "page-6h",
        "ticket-1d",
        "ticket-3d",
    ]
    assert burn_rate_windows(slo(alerting=[])) == ()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"target": 1.0}, "target: must be between 0 and 1 exclusive"),
        ({"target": 0}, "target: must be between 0 and 1 exclusive"),
        ({"target": "high"}, "target: must be a number between 0 and 1 exclusive"),
        ({"window": "30x"}, "window: '30x' is not a duration (use 30d, 6h, 5m"),
        ({"window": "90m"}, "window: 90m: must be a whole number of hours"),
        ({"window": "400d"}, "window: 400d: must be at most 366d"),
        ({"window": "1d12h"}, "window: '1d12h': write an SLO window in one unit, as 36h"),
        ({"window": "0.5d"}, "window: '0.5d': write an SLO window in one unit, as 12h"),
        (
            {"alerting": [{"severity": "page", "long": "1h90m", "short": "5m", "factor": 2}]},
            "alerting[0].long: '1h90m': write this window as 2h30m",
        ),
        (
            {"alerting": [{"severity": "page", "long": "1h", "short": "120s", "factor": 2}]},
            "alerting[0].short: '120s': write this window as 2m",
        ),
        (
            {"alerting": [{"severity": "page", "long": 36_000_000, "short": "1h", "factor": 2}]},
            "alerting[0].long: 10000h: no alert window is longer than 366d",
        ),
        ({"window": "2d"}, "alerting: the default 3d alert window is longer than the 2d"),
        ({"name": "has space"}, "name: 'has space' must be 1-128 letters"),
        ({"sli": {"kind": "latency"}}, "sli.threshold: required for kind latency"),
        ({"sli": {"kind": "latency", "threshold": "2x"}}, "sli.threshold: '2x' is not a"),
        ({"sli": {"kind": "task_success", "threshold": 1}}, "sli.threshold: not used by kind"),
        ({"sli": {"kind": "trust_score", "threshold": -1}}, "sli.threshold: must be >= 0"),
        ({"sli": {"kind": "uptime"}}, "sli.kind: Input should be 'task_success'"),
        (
            {"sli": {"kind": "llm_success", "match": {"agent.span.kind": "AGENT_TASK"}}},
            "sli.match: agent.span.kind: kind llm_success only counts LLM_INFERENCE spans",
        ),
        (
            {"sli": {"kind": "latency", "threshold": 1, "match": {"agent.span.kind": "TASK"}}},
            "sli.match: agent.span.kind: 'TASK' is not one of",
        ),
        ({"sli": {"kind": "llm_success", "match": {"x": []}}}, "x: an empty list matches"),
        ({"sli": {"kind": "llm_success", "attribute": "x"}}, "sli.attribute: only used by"),
        ({"sli": {"kind": "llm_success", "window": "1d"}}, "sli.window: unknown key"),
        ({"labels": ["agent.id", "agent_id"]}, "labels: 'agent_id' and 'agent.id' give the"),
        ({"labels": ["slo"]}, "labels: 'slo' would clash with agent-sre's own label"),
        ({"max_label_sets": 0}, "max_label_sets: Input should be greater than or equal to 1"),
        (
            {"alerting": [{"severity": "page", "long": "1h", "short": "5m"}]},
            "alerting[0]: give exactly one of budget_percent and factor",
        ),
        (
            {"alerting": [{"severity": "page", "long": "5m", "short": "1h", "factor": 2}]},
            "alerting[0]: short: must be shorter than long",
        ),
        (
            {"alerting": [{"severity": "page", "long": "7h30m", "short": "1h", "factor": 2}]},
            "alerting[0].long: 450m: windows over 6h must be a whole number of hours",
        ),
        (
            {"alerting": [{"severity": "page", "long": "90s", "short": "1m", "factor": 2}]},
            "alerting[0].long: 90s: must be a whole number of minutes",
        ),
        (
            {"alerting": [{"severity": "page", "long": "31d", "short": "1h", "factor": 2}]},
            "alerting: [0] 31d alert window is longer than the 30d SLO window",
        ),
    ],
)
def test_invalid_specs_name_the_field_and_the_rule(fields: dict[str, Any], message: str) -> None:
    spec: dict[str, Any] = {"name": "s", "target": 0.99, "sli": {"kind": "llm_success"}}
    spec.update(fields)
    import yaml

    problems = problems_of(yaml.safe_dump({"slos": [spec]}))
    assert any(message in problem for problem in problems), problems
    assert all(problem.startswith("slos.yaml:") for problem in problems)


def test_errors_carry_the_line_of_the_field() -> None:
    problems = problems_of("slos:\n  - name: a\n    sli: {kind: llm_success}\n    target: 2\n")
    assert problems == [
        "slos.yaml:4: slos[0].target: must be between 0 and 1 exclusive (e.g. 0.99), not 2"
    ]


def test_specs_are_frozen_and_compare_by_value() -> None:
    assert slo(target=0.99) == slo(target=0.99)
    assert slo(target=0.99) != slo(target=0.995)
    with pytest.raises(ValidationError):
        slo().target = 0.5  # type: ignore[misc]


def test_duplicate_names_are_a_problem_of_the_set() -> None:
    specs = [slo("a"), slo("b"), slo("a")]
    assert slo_set_problems(specs) == ["slos[2].name: 'a' is already the name of slos[0]"]
    assert slo_set_problems(specs[:2]) == []


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        SLOSpec.model_validate(
            {"name": "a", "target": 0.9, "sli": {"kind": "llm_success"}, "objective": 0.9}
        )
