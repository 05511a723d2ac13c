"""The verdict from recorded evidence sets: one per tier, reproducible, every criterion
listed with its evidence, and what is missing for the next tier."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent_sre.certification.evidence import Evidence, IncidentRecord, Mark
from agent_sre.certification.spec import CertificationConfig, default_tiers
from agent_sre.certification.verdict import evaluate

DATA = Path(__file__).parents[2] / "data" / "certification"
TIERS = default_tiers()


def recorded(name: str) -> tuple[Evidence, float]:
    data = json.loads((DATA / f"{name}.json").read_text())
    return Evidence.from_dict(data), float(data["now"])


@pytest.mark.parametrize(
    ("name", "tier", "next_tier"),
    [
        ("none", None, "bronze"),
        ("bronze", "bronze", "silver"),
        ("silver", "silver", "gold"),
        ("gold", "gold", None),
    ],  # fmt: skip
)
def test_each_recorded_set_earns_its_tier(
    name: str, tier: str | None, next_tier: str | None
) -> None:
    evidence, now = recorded(name)
    verdict = evaluate(evidence, TIERS, now)
    assert verdict.tier == tier
    assert verdict.next_tier == next_tier
    assert verdict.to_dict()["next_tier"] == next_tier
    # every criterion of every tier is listed, each with its tier
    listed = [(c.tier, c.name) for c in verdict.criteria]
    assert ("bronze", "slo_attainment") in listed and ("gold", "trust_score") in listed
    assert len(listed) == sum(
        sum(getattr(t, k) is not None for k in ("slo", "budget", "chaos", "incidents",
                                                "rollouts", "policy", "trust"))
        for t in TIERS
    )  # fmt: skip
    if next_tier is None:
        assert verdict.missing == ()
    else:
        assert verdict.missing and all(m.split(":")[0] in ("bronze", "silver", "gold")
                                       for m in verdict.missing)  # fmt: skip


def test_the_same_evidence_gives_the_same_verdict() -> None:
    evidence, now = recorded("silver")
    first = evaluate(evidence, TIERS, now).to_dict()
    again = evaluate(Evidence.from_dict(evidence.to_dict()), TIERS, now).to_dict()
    assert first == again


def test_missing_names_the_criteria_and_their_evidence() -> None:
    evidence, now = recorded("silver")
    verdict = evaluate(evidence, TIERS, now)
    (chaos,) = [c for c in verdict.criteria if c.tier == "gold" and c.name == "chaos_experiments"]
    assert not chaos.met
    assert [run["run_id"] for run in chaos.evidence["runs"]] == [
        "llm-errors-1789900000-a1b2c3",
        "llm-latency-1789950000-d4e5f6",
    ]
    assert [run["passed"] for run in chaos.evidence["runs"]] == [False, False]
    assert any("gold: 2 chaos run(s) passed" in m for m in verdict.missing)
    (slo,) = [c for c in verdict.criteria if c.tier == "bronze" and c.name == "slo_attainment"]
    assert slo.met and slo.evidence["slos"][0]["slo"] == "task-success"
    assert slo.evidence["slos"][0]["total"] == 7000 or slo.evidence["slos"][0]["total"] == 8000


def test_none_names_the_exhausted_budget() -> None:
    evidence, now = recorded("none")
    verdict = evaluate(evidence, TIERS, now)
    (budget,) = [c for c in verdict.criteria if c.name == "budget_adherence"]
    assert not budget.met
    assert budget.evidence["exhaustions"][0]["budget"] == "per-agent-daily"
    assert "per-agent-daily" in verdict.missing[0]


def test_time_moves_evidence_out_of_its_window() -> None:
    """A fixed clock gives a fixed verdict; the same evidence a month later is stale."""
    evidence, now = recorded("gold")
    assert evaluate(evidence, TIERS, now).tier == "gold"
    assert evaluate(evidence, TIERS, now + 60 * 86400).tier is None


def test_incidents_count_by_severity_and_time_to_resolve() -> None:
    evidence, now = recorded("gold")
    evidence.incidents.append(IncidentRecord("inc-9", "warning", now - 7200, None, "slow"))
    verdict = evaluate(evidence, TIERS, now)
    assert verdict.tier == "silver"
    (incidents,) = [c for c in verdict.criteria if c.tier == "gold" and c.name == "incidents"]
    assert "inc-9" in incidents.detail
    assert incidents.evidence["incidents"][-1]["id"] == "inc-9"


def test_an_unknown_tier_is_missing_by_name() -> None:
    evidence, now = recorded("gold")
    verdict = evaluate(evidence, TIERS, now)
    assert verdict.holds("silver") and not verdict.holds("platinum")
    assert verdict.missing_for("platinum")[0].startswith("platinum: no such tier")


def test_slo_objective_and_named_slos() -> None:
    evidence, now = recorded("gold")
    config = CertificationConfig.model_validate(
        {
            "tiers": [
                {
                    "name": "strict",
                    "slo": {"slos": ["task-success", "latency"], "objective": 0.9995},
                }
            ]
        }  # fmt: skip
    )
    verdict = evaluate(evidence, config.tiers, now)
    assert verdict.tier is None
    (slo,) = verdict.criteria
    assert "no SLO named 'latency' is configured" in slo.detail
    assert "task-success:" in slo.detail and "< 99.95%" in slo.detail


def test_policy_and_trust_are_judged_only_where_spans_carry_them() -> None:
    evidence = Evidence("a", "1", 3600.0)
    config = CertificationConfig.model_validate(
        {
            "tiers": [
                {"name": "t", "policy": {}, "trust": {}},
                {"name": "u", "trust": {"required": True}},
            ]
        }  # fmt: skip
    )
    verdict = evaluate(evidence, config.tiers, 7200.0)
    assert verdict.tier == "t"
    assert "not judged" in verdict.criteria[0].detail
    assert verdict.missing == (
        "u: no span carried a usable agent.trust_score within 7d (required)",
    )


def test_budget_cost_per_task() -> None:
    evidence, now = recorded("gold")
    config = CertificationConfig.model_validate(
        {"tiers": [{"name": "cheap", "budget": {"max_cost_per_task_usd": 0.01}}]}
    )
    verdict = evaluate(evidence, config.tiers, now)
    assert verdict.tier is None
    assert "$0.03 per task" in verdict.criteria[0].detail
    evidence.exhaustions.append(Mark(now - 10, "b", ""))
    assert "1 budget exhaustion(s)" in evaluate(evidence, config.tiers, now).criteria[0].detail


def test_a_malformed_recorded_set_is_refused() -> None:
    data = json.loads((DATA / "gold.json").read_text())
    data["usage"][0]["spans"] = "NaN"
    with pytest.raises(ValueError):
        Evidence.from_dict(data)


def test_text_and_markdown_carry_every_criterion_and_escape_hostile_ids() -> None:
    from agent_sre.certification.render import as_markdown, as_text

    evidence, now = recorded("silver")
    evidence.agent = "evil|agent\n# Approved <script>alert(1)</script> [click](http://x)"
    data = evaluate(evidence, TIERS, now).to_dict()
    text = as_text(data)
    assert "tier silver (next: gold)" in text
    assert text.count("[PASS]") + text.count("[FAIL]") == len(data["criteria"])
    assert "llm-errors-1789900000-a1b2c3" in text  # run ids in the evidence
    assert "\n# Approved" not in text
    markdown = as_markdown(data)
    assert "**silver**" in markdown
    assert "<script>" not in markdown and "\\<script\\>" in markdown
    assert "\n# Approved" not in markdown and "\\[click\\]\\(http://x\\)" in markdown
    first = markdown.splitlines()[0]
    assert first.count("|") == first.count("\\|")  # no table cell escapes
    assert "gold: 2 chaos run\\(s\\) passed" in markdown
