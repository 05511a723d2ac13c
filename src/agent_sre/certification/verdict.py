"""The verdict: which tier one agent version holds, criterion by criterion, from its evidence.

:func:`evaluate` is pure: the same evidence, tiers and time give the same verdict. Tiers are
cumulative: a version holds tier *k* when every criterion of tiers ``0..k`` is met. A
verdict lists every criterion of every tier with its evidence (numbers, run ids, incident
ids) and says what is missing for the next tier.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from agent_sre.certification.evidence import (
    NO_TRUST,
    POLICY_CHECKS,
    POLICY_VIOLATIONS,
    SPEND_USD,
    TASK_COST_N,
    TASK_COST_SUM,
    TASKS,
    TRUST_IGNORED,
    TRUST_MIN,
    TRUST_N,
    TRUST_SUM,
)
from agent_sre.units import format_duration

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agent_sre.certification.evidence import Evidence
    from agent_sre.certification.spec import (
        BudgetCriterion,
        ChaosCriterion,
        IncidentCriterion,
        PolicyCriterion,
        RolloutCriterion,
        SLOCriterion,
        TierSpec,
        TrustCriterion,
    )

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


def rfc3339(at: float) -> str:
    """``2026-12-07T06:00:00Z`` (whole seconds, UTC)."""
    stamp = datetime.fromtimestamp(at, tz=timezone.utc).replace(microsecond=0)
    return stamp.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class CriterionResult:
    """One criterion of one tier, judged."""

    tier: str
    name: str
    met: bool
    evidence: dict[str, Any]
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "name": self.name,
            "met": self.met,
            "evidence": self.evidence,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Verdict:
    """The tier an agent version holds and why."""

    agent: str
    version: str
    tiers: tuple[str, ...]
    tier: str | None
    evaluated_at: float
    criteria: tuple[CriterionResult, ...]
    first_seen: float | None = None
    last_seen: float | None = None
    missing: tuple[str, ...] = field(default=())

    @property
    def rank(self) -> int:
        """0 for no tier, 1 for the lowest, ..."""
        return 0 if self.tier is None else self.tiers.index(self.tier) + 1

    @property
    def next_tier(self) -> str | None:
        return self.tiers[self.rank] if self.rank < len(self.tiers) else None

    def holds(self, tier: str) -> bool:
        """Whether the version holds ``tier`` or a higher one (False for an unknown tier)."""
        return tier in self.tiers and self.rank >= self.tiers.index(tier) + 1

    def missing_for(self, tier: str) -> list[str]:
        """What the version lacks for ``tier`` (empty when it holds it)."""
        if tier not in self.tiers:
            return [f"{tier}: no such tier (tiers: {', '.join(self.tiers)})"]
        wanted = set(self.tiers[: self.tiers.index(tier) + 1])
        return [f"{c.tier}: {c.detail}" for c in self.criteria if c.tier in wanted and not c.met]

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "version": self.version,
            "tier": self.tier,
            "rank": self.rank,
            "evaluated_at": rfc3339(self.evaluated_at),
            "next_tier": self.next_tier,
            "first_seen": None if self.first_seen is None else rfc3339(self.first_seen),
            "last_seen": None if self.last_seen is None else rfc3339(self.last_seen),
            "criteria": [c.to_dict() for c in self.criteria],
            "missing": list(self.missing),
        }


def evaluate(evidence: Evidence, tiers: Sequence[TierSpec], now: float) -> Verdict:
    """Judges ``evidence`` against ``tiers`` (lowest first) at ``now``."""
    results: list[CriterionResult] = []
    held: str | None = None
    broken = False
    for tier in tiers:
        judged = list(_judge_tier(evidence, tier, now))
        results.extend(judged)
        if not broken and all(result.met for result in judged):
            held = tier.name
        else:
            broken = True
    names = tuple(tier.name for tier in tiers)
    verdict = Verdict(
        agent=evidence.agent,
        version=evidence.version,
        tiers=names,
        tier=held,
        evaluated_at=now,
        criteria=tuple(results),
        first_seen=evidence.first_seen,
        last_seen=evidence.last_seen,
    )
    following = verdict.next_tier
    missing = tuple(verdict.missing_for(following)) if following is not None else ()
    return Verdict(**{**verdict.__dict__, "missing": missing})


def _judge_tier(evidence: Evidence, tier: TierSpec, now: float) -> list[CriterionResult]:
    out = []
    if tier.slo is not None:
        out.append(_slo(evidence, tier.name, tier.slo, now))
    if tier.budget is not None:
        out.append(_budget(evidence, tier.name, tier.budget, now))
    if tier.chaos is not None:
        out.append(_chaos(evidence, tier.name, tier.chaos, now))
    if tier.incidents is not None:
        out.append(_incidents(evidence, tier.name, tier.incidents, now))
    if tier.rollouts is not None:
        out.append(_rollouts(evidence, tier.name, tier.rollouts, now))
    if tier.policy is not None:
        out.append(_policy(evidence, tier.name, tier.policy, now))
    if tier.trust is not None:
        out.append(_trust(evidence, tier.name, tier.trust, now))
    return out


def _pct(ratio: float) -> str:
    return f"{100 * ratio:.2f}".rstrip("0").rstrip(".") + "%"


def _slo(evidence: Evidence, tier: str, spec: SLOCriterion, now: float) -> CriterionResult:
    window = format_duration(spec.window)
    start = now - spec.window
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    passed: list[str] = []
    names = spec.slos or sorted(evidence.slos)
    for name in names:
        series = evidence.slos.get(name)
        if series is None:
            problems.append(f"no SLO named {name!r} is configured")
            continue
        good, total = series.window(start, now)
        objective = max(spec.objective or 0.0, series.target)
        attainment = good / total if total else None
        rows.append(
            {
                "slo": name,
                "good": int(good),
                "total": int(total),
                "attainment": attainment,
                "objective": objective,
            }
        )
        if total < spec.min_events:
            if spec.slos:  # named: it must be judged
                problems.append(
                    f"{name}: {int(total)} events over {window}, {spec.min_events} needed"
                )
            continue
        assert attainment is not None
        if attainment < objective:
            problems.append(
                f"{name}: {_pct(attainment)} over {window} < {_pct(objective)} "
                f"({int(total - good)} bad of {int(total)})"
            )
        else:
            passed.append(f"{name} {_pct(attainment)} over {window} >= {_pct(objective)}")
    if not spec.slos and not passed and not problems:
        if not evidence.slos:
            problems.append("no SLO is configured: nothing measures this version")
        else:
            problems.append(
                f"no SLO counted {spec.min_events} events of this version over {window}"
            )
    met = not problems
    detail = "; ".join(passed) if met else "; ".join(problems)
    return CriterionResult(tier, "slo_attainment", met, {"window": window, "slos": rows}, detail)


def _budget(evidence: Evidence, tier: str, spec: BudgetCriterion, now: float) -> CriterionResult:
    window = format_duration(spec.window)
    start = now - spec.window
    marks = [m for m in evidence.exhaustions if start <= m.at <= now]
    usage = evidence.usage_window(start, now)
    tasks = usage[TASKS]
    if usage[TASK_COST_N]:
        per_task: float | None = usage[TASK_COST_SUM] / usage[TASK_COST_N]
    elif tasks:
        per_task = usage[SPEND_USD] / tasks
    else:
        per_task = None
    facts: dict[str, Any] = {
        "window": window,
        "exhaustions": [{"budget": m.ref, "at": rfc3339(m.at), "detail": m.detail} for m in marks],
        "tasks": int(tasks),
        "spend_usd": round(usage[SPEND_USD], 9),
        "cost_per_task_usd": None if per_task is None else round(per_task, 9),
    }
    problems = []
    if len(marks) > spec.max_exhaustions:
        names = ", ".join(sorted({m.ref for m in marks}))
        problems.append(
            f"{len(marks)} budget exhaustion(s) over {window} ({names}), at most "
            f"{spec.max_exhaustions}"
        )
    if spec.max_cost_per_task_usd is not None:
        if tasks < spec.min_tasks:
            problems.append(f"{int(tasks)} task(s) over {window}, {spec.min_tasks} needed "
                            "to judge the cost per task")  # fmt: skip
        elif per_task is not None and per_task > spec.max_cost_per_task_usd:
            problems.append(
                f"${per_task:.4g} per task over {window} > ${spec.max_cost_per_task_usd:g}"
            )
    if problems:
        return CriterionResult(tier, "budget_adherence", False, facts, "; ".join(problems))
    detail = (
        f"no budget exhausted over {window}"
        if not marks
        else (f"{len(marks)} exhaustion(s) over {window}, at most {spec.max_exhaustions}")
    )
    if per_task is not None:
        detail += f"; ${per_task:.4g} per task ({int(tasks)} tasks)"
    return CriterionResult(tier, "budget_adherence", True, facts, detail)


def _chaos(evidence: Evidence, tier: str, spec: ChaosCriterion, now: float) -> CriterionResult:
    window = format_duration(spec.window)
    start = now - spec.window
    runs = sorted(
        (r for r in evidence.chaos if start <= r.started_at <= now),
        key=lambda r: (r.started_at, r.id),
    )
    rows = []
    passed = []
    for run in runs:
        ok = (
            run.state == "completed"
            and run.injected > 0
            and run.score is not None
            and run.score >= spec.min_score
        )
        rows.append(
            {
                "run_id": run.id,
                "experiment": run.experiment,
                "state": run.state,
                "started_at": rfc3339(run.started_at),
                "resilience_score": run.score,
                "faults": dict(run.faults),
                "passed": ok,
            }
        )
        if ok:
            passed.append(run)
    covered = {fault for run in passed for fault, n in run.faults.items() if n > 0}
    lacking = [fault for fault in spec.faults if fault not in covered]
    facts = {"window": window, "min_score": spec.min_score, "runs": rows}
    problems = []
    if len(passed) < spec.min_passed:
        seen = f"{len(runs)} run(s), {len(passed)} passed" if runs else "none found"
        problems.append(
            f"{spec.min_passed} chaos run(s) passed with a resilience score >= "
            f"{spec.min_score:g} within {window} needed ({seen})"
        )
    if lacking:
        problems.append(f"no passed run injected {', '.join(lacking)} within {window}")
    if problems:
        return CriterionResult(tier, "chaos_experiments", False, facts, "; ".join(problems))
    best = ", ".join(f"{r.id} ({r.experiment}, score {r.score:g})" for r in passed[-3:])
    return CriterionResult(
        tier, "chaos_experiments", True, facts, f"{len(passed)} passed within {window}: {best}"
    )


def _incidents(
    evidence: Evidence, tier: str, spec: IncidentCriterion, now: float
) -> CriterionResult:
    window = format_duration(spec.window)
    start = now - spec.window
    floor = SEVERITY_RANK[spec.severity]
    counted = sorted(
        (
            i
            for i in evidence.incidents
            if SEVERITY_RANK.get(i.severity, 2) >= floor
            and i.opened_at <= now
            and (i.resolved_at is None or i.resolved_at >= start)
        ),
        key=lambda i: (i.opened_at, i.id),
    )
    rows = []
    slow = []
    for incident in counted:
        end = incident.resolved_at if incident.resolved_at is not None else now
        ttr = max(0.0, end - incident.opened_at)
        rows.append(
            {
                "id": incident.id,
                "severity": incident.severity,
                "opened_at": rfc3339(incident.opened_at),
                "resolved_at": None
                if incident.resolved_at is None
                else rfc3339(incident.resolved_at),
                "time_to_resolve_s": None if incident.resolved_at is None else round(ttr, 3),
                "title": incident.title[:200],
            }
        )
        if spec.max_time_to_resolve is not None and ttr > spec.max_time_to_resolve:
            slow.append(incident.id)
    facts = {"window": window, "severity_at_least": spec.severity, "incidents": rows}
    problems = []
    if len(counted) > spec.max_incidents:
        ids = ", ".join(i.id for i in counted[-5:])
        problems.append(
            f"{len(counted)} {spec.severity}+ incident(s) within {window} ({ids}), at most "
            f"{spec.max_incidents}"
        )
    if slow:
        limit = format_duration(spec.max_time_to_resolve or 0.0)
        problems.append(f"not resolved within {limit}: {', '.join(slow[-5:])}")
    if problems:
        return CriterionResult(tier, "incidents", False, facts, "; ".join(problems))
    detail = (
        f"no {spec.severity}+ incident within {window}"
        if not counted
        else f"{len(counted)} {spec.severity}+ incident(s) within {window}, at most "
        f"{spec.max_incidents}"
    )
    return CriterionResult(tier, "incidents", True, facts, detail)


def _rollouts(evidence: Evidence, tier: str, spec: RolloutCriterion, now: float) -> CriterionResult:
    window = format_duration(spec.window)
    start = now - spec.window
    records = sorted(
        (r for r in evidence.rollouts if start <= r.at <= now), key=lambda r: (r.at, r.name)
    )
    promoted = [r.name for r in records if r.outcome == "promoted"]
    rolled_back = [r.name for r in records if r.outcome == "rolled_back"]
    facts = {
        "window": window,
        "rollouts": [
            {"rollout": r.name, "outcome": r.outcome, "at": rfc3339(r.at)} for r in records
        ],  # fmt: skip
    }
    problems = []
    if len(promoted) < spec.min_promoted:
        problems.append(
            f"{spec.min_promoted} rollout(s) promoted within {window} needed "
            f"({len(promoted)} found)"
        )
    if len(rolled_back) > spec.max_rolled_back:
        problems.append(
            f"rolled back within {window}: {', '.join(rolled_back[-5:])} (at most "
            f"{spec.max_rolled_back})"
        )
    if problems:
        return CriterionResult(tier, "rollout_history", False, facts, "; ".join(problems))
    what = ", ".join(promoted[-3:]) or "none asked"
    return CriterionResult(
        tier,
        "rollout_history",
        True,
        facts,
        f"promoted within {window}: {what}; {len(rolled_back)} rolled back",
    )


def _policy(evidence: Evidence, tier: str, spec: PolicyCriterion, now: float) -> CriterionResult:
    window = format_duration(spec.window)
    usage = evidence.usage_window(now - spec.window, now)
    checks, violations = usage[POLICY_CHECKS], usage[POLICY_VIOLATIONS]
    ratio = violations / checks if checks else None
    facts = {"window": window, "checks": int(checks), "violations": int(violations),
             "violation_ratio": ratio, "max_violation_ratio": spec.max_violation_ratio}  # fmt: skip
    if not checks:
        met = not spec.required
        detail = f"no span carried agent.policy.decision within {window}" + (
            " (not judged)" if met else " (required)"
        )
        return CriterionResult(tier, "policy_compliance", met, facts, detail)
    assert ratio is not None
    met = ratio <= spec.max_violation_ratio
    comparison = "<=" if met else ">"
    detail = (
        f"{int(violations)} violation(s) in {int(checks)} decisions within {window}: "
        f"{_pct(ratio)} {comparison} {_pct(spec.max_violation_ratio)}"
    )
    return CriterionResult(tier, "policy_compliance", met, facts, detail)


def _trust(evidence: Evidence, tier: str, spec: TrustCriterion, now: float) -> CriterionResult:
    window = format_duration(spec.window)
    usage = evidence.usage_window(now - spec.window, now)
    samples = usage[TRUST_N]
    average = usage[TRUST_SUM] / samples if samples else None
    lowest = usage[TRUST_MIN] if samples and usage[TRUST_MIN] < NO_TRUST else None
    facts = {
        "window": window,
        "samples": int(samples),
        "average": None if average is None else round(average, 6),
        "lowest": lowest,
        "ignored": int(usage[TRUST_IGNORED]),
        "min_average": spec.min_average,
        "min_lowest": spec.min_lowest,
    }
    if not samples:
        met = not spec.required
        detail = f"no span carried a usable agent.trust_score within {window}" + (
            " (not judged)" if met else " (required)"
        )
        return CriterionResult(tier, "trust_score", met, facts, detail)
    assert average is not None
    problems = []
    if average < spec.min_average:
        problems.append(f"average trust {average:.3f} over {window} < {spec.min_average:g}")
    if spec.min_lowest is not None and lowest is not None and lowest < spec.min_lowest:
        problems.append(f"lowest trust {lowest:.3f} over {window} < {spec.min_lowest:g}")
    if problems:
        return CriterionResult(tier, "trust_score", False, facts, "; ".join(problems))
    return CriterionResult(
        tier,
        "trust_score",
        True,
        facts,
        f"average trust {average:.3f} over {window} ({int(samples)} spans) >= {spec.min_average:g}",
    )
