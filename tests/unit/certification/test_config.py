"""The ``certification:`` section as a file gives it: defaults shipped, and every careless
or hostile value refused as ``file:line: dotted.field: message``."""

from __future__ import annotations

import pytest

from agent_sre.certification.spec import default_tiers
from agent_sre.config import ConfigError, load_config, parse_config

SLOS = """
slos:
  - name: task-success
    target: 0.99
    sli: {kind: task_success}
"""
ROLLOUT = """
proxy:
  routes: [{name: llm, prefix: /llm, upstream: "http://127.0.0.1:1", api: openai}]
rollouts:
  rollouts:
    - name: planner-2
      route: llm
      vary: agent_version
      agent: planner
      baseline: "1.0"
      candidate: "2.0"
      steps:
        - {weight: 10, duration: 1m}
        - {weight: 50, duration: 1m, require_tier: %s}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "cfg.yaml", {})
    return caught.value.problems


def test_the_shipped_file_holds_the_default_tiers() -> None:
    assert load_config(None).certification.tiers == default_tiers()
    assert parse_config("{}", "cfg.yaml", {}).certification.tier_names == (
        "bronze", "silver", "gold")  # fmt: skip


def test_a_criterion_naming_a_missing_slo_is_refused_at_its_line() -> None:
    text = (
        SLOS
        + """
certification:
  tiers:
    - name: bronze
      slo: {slos: [task-success, latency]}
"""
    )
    (problem,) = problems(text)
    assert problem.startswith("cfg.yaml:10: certification.tiers[0].slo.slos[1]: ")
    assert "no SLO is named 'latency'" in problem


def test_an_objective_never_lowers_an_slo_target() -> None:
    text = (
        SLOS
        + """
certification:
  tiers:
    - {name: bronze, slo: {objective: 0.95}}
"""
    )
    (problem,) = problems(text)
    assert problem.startswith("cfg.yaml:9: certification.tiers[0].slo.objective: ")
    assert "never lower" in problem


@pytest.mark.parametrize(
    ("tiers", "where", "says"),
    [
        ("[]", "certification.tiers", "at least one tier"),
        ("[{name: bronze}]", "certification", "asks for nothing"),
        ("[{name: Gold!, budget: {}}]", "certification.tiers[0].name", "not a tier name"),
        ("[{name: a, budget: {}}, {name: a, chaos: {}}]", "certification.tiers", "twice"),
        ("[{name: a, platinum: {}}]", "certification.tiers[0].platinum", "unknown key"),
        (
            "[{name: a, chaos: {faults: [gremlins]}}]",
            "certification.tiers[0].chaos.faults[0]",
            "Input should be",
        ),
        ("[{name: a, trust: {min_average: .nan}}]", "certification.tiers[0].trust.min_average", ""),
        ("[{name: a, slo: {window: 400d}}]", "certification.tiers[0].slo.window", "less than"),
        (
            "[{name: a, budget: {max_exhaustions: 1e30}}]",
            "certification.tiers[0].budget.max_exhaustions",
            "",
        ),
    ],
)
def test_careless_tiers_are_refused(tiers: str, where: str, says: str) -> None:
    (problem, *_) = problems(f"certification:\n  tiers: {tiers}\n")
    assert problem.startswith(f"cfg.yaml:2: {where}: ") or problem.startswith(
        f"cfg.yaml:1: {where}: "
    ), problem
    assert says in problem


def test_a_rollout_step_requiring_an_unknown_tier_is_refused() -> None:
    (problem,) = problems(ROLLOUT % "platinum")
    assert problem.startswith(
        "cfg.yaml:14: rollouts.rollouts[0].steps[1].require_tier: no certification tier is "
        "named 'platinum'"
    ), problem
    config = parse_config(ROLLOUT % "silver", "cfg.yaml", {})
    assert config.rollouts.rollouts[0].steps[1].require_tier == "silver"


def test_require_tier_needs_an_agent_version_rollout_and_not_the_first_step() -> None:
    (problem,) = problems((ROLLOUT % "silver").replace("      agent: planner\n", ""))
    assert "needs vary: agent_version and agent" in problem
    text = (ROLLOUT % "silver").replace(
        "{weight: 10, duration: 1m}", "{weight: 10, duration: 1m, require_tier: bronze}"
    )
    (problem,) = problems(text)
    assert "steps[0].require_tier: the first step" in problem
