"""The operator's rendering: the daemon's own validation judges each resource."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from agent_sre.config import parse_config
from agent_sre_operator.kinds import BUDGET, EXPERIMENT, ROLLOUT, SLO, Kind
from agent_sre_operator.render import BaseConfigError, Resource, render

BASE = """\
admin: {endpoint: "127.0.0.1:0", token: "${AGENT_SRE_ADMIN_TOKEN:-}"}
chaos: {enabled: true}
slos:
  - {name: base-slo, target: 0.9, sli: {kind: llm_success}}
"""
GOOD_SLO: dict[str, Any] = {"target": 0.99, "window": "7d", "sli": {"kind": "task_success"}}


def res(kind: Kind, name: str, spec: dict[str, Any], namespace: str = "ns") -> Resource:
    return Resource(kind, namespace, name, spec)


def test_resources_land_in_their_sections_and_the_result_loads() -> None:
    out = render(
        BASE,
        [
            res(SLO, "tasks", GOOD_SLO),
            res(BUDGET, "daily", {"scope": "agent", "limit_usd": 5}),
            res(
                EXPERIMENT,
                "flaky",
                {"faults": [{"type": "error"}], "steady_state": {"slos_healthy": ["tasks"]}},
            ),
            res(
                ROLLOUT,
                "gpt41",
                {
                    "route": "openai",
                    "candidate": "gpt-4.1",
                    "steps": [{"weight": 10, "pause": True}],
                },
            ),  # fmt: skip
        ],
    )
    assert all(v.valid for v in out.verdicts.values()), out.verdicts
    config = parse_config(out.text, "rendered")
    assert [s.name for s in config.slos] == ["base-slo", "tasks"]
    assert config.slos[1].window == 7 * 86400
    assert [b.name for b in config.budgets.budgets] == ["daily"]
    assert [e.name for e in config.chaos.experiments] == ["flaky"]
    assert [r.name for r in config.rollouts.rollouts] == ["gpt41"]
    assert "${AGENT_SRE_ADMIN_TOKEN:-}" in out.text  # the daemons expand their own
    assert len(out.digest) == 64


@pytest.mark.parametrize(
    ("kind", "spec", "expected"),
    [
        (SLO, {**GOOD_SLO, "window": "7 days"}, "spec.window: "),
        (SLO, {**GOOD_SLO, "colour": "red"}, "spec.colour: unknown key"),
        (SLO, {"target": 0.99}, "spec.sli: Field required"),
        (BUDGET, {"scope": "agent", "limit_usd": -1}, "spec.limit_usd: "),
        (
            ROLLOUT,
            {"route": "nowhere", "candidate": "m", "steps": [{"weight": 5, "pause": True}]},
            "nowhere",
        ),
        (
            EXPERIMENT,
            {"faults": [{"type": "error"}], "steady_state": {"slos_healthy": ["missing-slo"]}},
            "missing-slo",
        ),
        (SLO, {**GOOD_SLO, "description": "${AGENT_SRE_ADMIN_TOKEN}"}, "spec.description: '${'"),
    ],
)
def test_a_bad_resource_is_refused_with_the_daemons_field_and_message(
    kind: Kind, spec: dict[str, Any], expected: str
) -> None:
    out = render(BASE, [res(kind, "bad", spec), res(SLO, "fine", GOOD_SLO)])
    verdict = out.verdicts[(kind.kind, "ns", "bad")]
    assert not verdict.valid
    assert any(expected in p for p in verdict.problems), verdict.problems
    assert not any(p.startswith("agent-sre.yaml") for p in verdict.problems), verdict.problems
    names = {s.name for s in parse_config(out.text, "rendered").slos}
    assert "fine" in names and "bad" not in names  # one bad resource stops no other


def test_a_lowered_target_is_refused_and_the_old_target_kept() -> None:
    first = render(BASE, [res(SLO, "tasks", GOOD_SLO)])
    lowered = render(BASE, [res(SLO, "tasks", {**GOOD_SLO, "target": 0.95})], first.text)
    verdict = lowered.verdicts[("AgentSLO", "ns", "tasks")]
    assert verdict.kept
    assert verdict.problems[0].startswith("spec.target: slo 'tasks': target lowered from 0.99")
    assert "never lowered" in verdict.problems[0]
    running = {s.name: s.target for s in parse_config(lowered.text, "r").slos}
    assert running["tasks"] == 0.99
    raised = render(BASE, [res(SLO, "tasks", {**GOOD_SLO, "target": 0.999})], lowered.text)
    assert raised.verdicts[("AgentSLO", "ns", "tasks")].valid
    assert {s.name: s.target for s in parse_config(raised.text, "r").slos}["tasks"] == 0.999


def test_a_broken_update_keeps_the_applied_entry() -> None:
    first = render(BASE, [res(SLO, "tasks", GOOD_SLO)])
    broken = render(BASE, [res(SLO, "tasks", {**GOOD_SLO, "window": "soon"})], first.text)
    assert broken.verdicts[("AgentSLO", "ns", "tasks")].kept
    assert "tasks" in {s.name for s in parse_config(broken.text, "r").slos}


def test_names_are_unique_across_namespaces_and_against_the_base() -> None:
    out = render(
        BASE,
        [
            res(SLO, "dup", GOOD_SLO, "a"),
            res(SLO, "dup", GOOD_SLO, "b"),
            res(SLO, "base-slo", GOOD_SLO),
        ],  # fmt: skip
    )
    assert out.verdicts[("AgentSLO", "a", "dup")].valid
    assert "AgentSLO a/dup" in out.verdicts[("AgentSLO", "b", "dup")].problems[0]
    assert "the chart's config" in out.verdicts[("AgentSLO", "ns", "base-slo")].problems[0]
    assert [s.name for s in parse_config(out.text, "r").slos] == ["base-slo", "dup"]


def test_a_deleted_resource_leaves_the_configuration() -> None:
    first = render(BASE, [res(SLO, "tasks", GOOD_SLO)])
    after = render(BASE, [], first.text)
    assert [s["name"] for s in yaml.safe_load(after.text)["slos"]] == ["base-slo"]


def test_a_base_config_that_does_not_load_is_an_error() -> None:
    with pytest.raises(BaseConfigError, match="slos"):
        render("slos: 3\n", [])


def test_the_docs_examples_of_resources_are_valid() -> None:
    """Every `# kubernetes` resource of ours in docs/operator.md renders valid."""
    import re
    from pathlib import Path

    from agent_sre_operator.kinds import BY_KIND

    text = (Path(__file__).parents[2] / "docs" / "operator.md").read_text()
    docs = [
        yaml.safe_load(block)
        for block in re.findall(r"```yaml\n(# kubernetes\n.*?)```", text, re.S)
    ]
    ours = [d for d in docs if d and d.get("kind") in BY_KIND]
    assert ours
    resources = [
        Resource(BY_KIND[d["kind"]], d["metadata"]["namespace"], d["metadata"]["name"], d["spec"])
        for d in ours
    ]
    out = render(BASE, resources)
    assert all(v.valid for v in out.verdicts.values()), out.verdicts


def test_a_resource_naming_a_refused_one_is_refused_too() -> None:
    """One load of everything, then again without what it blamed: a rollout whose analysis
    names an SLO that was refused is refused in the second load."""
    rollout = {"route": "openai", "candidate": "m2", "steps": [{"weight": 5, "pause": True}],
               "analysis": {"slo": "broken"}}  # fmt: skip
    out = render(
        BASE,
        [
            res(SLO, "broken", {**GOOD_SLO, "window": "soon"}),
            res(ROLLOUT, "uses-broken", rollout),
            res(ROLLOUT, "fine", {**rollout, "analysis": {"slo": "base-slo"}}),
        ],
    )
    assert not out.verdicts[("AgentSLO", "ns", "broken")].valid
    problems = out.verdicts[("AgentRollout", "ns", "uses-broken")].problems
    assert any("broken" in p for p in problems), problems
    assert out.verdicts[("AgentRollout", "ns", "fine")].valid


def test_the_fast_path_and_the_careful_path_agree() -> None:
    from agent_sre_operator.render import _entries, _sequential

    first = render(BASE, [res(SLO, "tasks", GOOD_SLO)])
    mixed = [
        res(SLO, "tasks", {**GOOD_SLO, "target": 0.5}),  # lowered: kept
        res(SLO, "bad", {**GOOD_SLO, "colour": 1}),
        res(SLO, "good", GOOD_SLO),
        res(BUDGET, "b", {"scope": "agent", "limit_usd": 5}),
        res(
            EXPERIMENT,
            "e",
            {"faults": [{"type": "error"}], "steady_state": {"slos_healthy": ["bad"]}},
        ),  # fmt: skip
    ]
    fast = render(BASE, mixed, first.text)
    order = sorted(mixed, key=lambda r: (["AgentSLO", "AgentBudget", "AgentChaosExperiment",
                                          "AgentRollout"].index(r.kind.kind), r.name))  # fmt: skip
    careful = _sequential(yaml.safe_load(BASE), order, _entries(first.text), {})
    assert fast.verdicts == careful.verdicts
    assert parse_config(fast.text, "f") == parse_config(careful.text, "c")


@pytest.mark.parametrize(
    ("kind", "spec"),
    [
        (SLO, {**GOOD_SLO, "window": "7 days"}),
        (SLO, {**GOOD_SLO, "colour": "red"}),
        (SLO, {"target": 1.5, "sli": {"kind": "task_success"}}),
        (BUDGET, {"scope": "agent", "limit_usd": -1}),
        (BUDGET, {"scope": "planet", "limit_usd": 5}),
    ],
)
def test_the_condition_says_what_agent_sre_validate_says_of_the_same_entry(
    kind: Kind, spec: dict[str, Any], tmp_path: Any
) -> None:
    """The same entry in a file: `agent-sre validate` prints `file:line: <section>[i].field:
    message`; the resource's condition is `spec.field: message`, the message the same."""
    import subprocess
    import sys

    entry = {"name": "bad", **spec}
    config = yaml.safe_load(BASE)
    section = config
    for key in kind.section[:-1]:
        section = section.setdefault(key, {})
    entries = section.setdefault(kind.section[-1], [])
    entries.insert(0, entry)
    path = tmp_path / "agent-sre.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = subprocess.run(
        [sys.executable, "-m", "agent_sre_daemon.cli", "validate", str(path)],
        capture_output=True, text=True, check=False, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 2, result
    prefix = ".".join(kind.section) + "[0]."
    cli = {}
    for line in result.stderr.splitlines():
        _file, _line, rest = line.split(":", 2)
        field, _sep, message = rest.strip().partition(": ")
        assert field.startswith(prefix), line
        cli[field.removeprefix(prefix)] = message
    verdict = render(BASE, [res(kind, "bad", spec)]).verdicts[(kind.kind, "ns", "bad")]
    operator = {}
    for problem in verdict.problems:
        field, _sep, message = problem.partition(": ")
        operator[field.removeprefix("spec.")] = message
    assert operator == cli
