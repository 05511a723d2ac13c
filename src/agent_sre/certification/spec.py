"""The ``certification:`` section: tiers and the evidence each one asks for.

Tiers are listed lowest first; an agent version holds a tier when it meets the criteria of
that tier and of every tier below it. Every criterion is optional: a tier states only what
it asks beyond the tiers below. The shipped defaults (:func:`default_tiers`, the same as
``config/agent-sre.yaml``) are bronze, silver and gold.

Example::

    certification:
      tiers:
        - name: bronze
          slo: {window: 7d, min_events: 100}
          budget: {window: 7d, max_exhaustions: 0}
        - name: silver
          chaos: {window: 30d, min_passed: 1, min_score: 70}
          incidents: {window: 14d, severity: critical, max_incidents: 0}
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from agent_sre.chaos.spec import FaultType
from agent_sre.section import Duration, Section

TIER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
MAX_WINDOW = 90 * 86400.0
"""The longest window a criterion may look back over: evidence is kept this long at most."""
CRITERIA = (
    "slo_attainment",
    "budget_adherence",
    "chaos_experiments",
    "incidents",
    "rollout_history",
    "policy_compliance",
    "trust_score",
)
"""The criteria names, in the order a verdict lists them."""


class SLOCriterion(Section):
    """The agent version's own SLI, counted from its spans, over ``window``.

    Attributes:
        slos: SLOs (by name) whose SLI is judged; empty: every configured SLO that counted
            at least ``min_events`` of this version's spans (and at least one must have).
        objective: the attainment asked for; never below the SLO's own target (unset: the
            target).
        min_events: events the version needs in the window before it is judged.
    """

    slos: list[str] = []
    window: Duration = Field(7 * 86400.0, gt=0, le=MAX_WINDOW)
    objective: float | None = Field(None, gt=0, lt=1)
    min_events: int = Field(100, ge=1, le=10**12)


class BudgetCriterion(Section):
    """Spend: no budget exhausted by the agent while the version ran, and (optionally) a
    ceiling on what one task costs."""

    window: Duration = Field(7 * 86400.0, gt=0, le=MAX_WINDOW)
    max_exhaustions: int = Field(0, ge=0)
    max_cost_per_task_usd: float | None = Field(None, gt=0)
    min_tasks: int = Field(1, ge=1)
    """Tasks needed before ``max_cost_per_task_usd`` is judged."""


class ChaosCriterion(Section):
    """Chaos experiments the version went through and passed: completed (not aborted,
    stopped or interrupted), with faults injected and a resilience score of at least
    ``min_score``; ``faults``: fault types the passed runs must have injected between them."""

    window: Duration = Field(30 * 86400.0, gt=0, le=MAX_WINDOW)
    min_passed: int = Field(1, ge=1)
    min_score: float = Field(70.0, ge=0, le=100)
    faults: list[FaultType] = []


class IncidentCriterion(Section):
    """Incidents naming the agent while the version ran: how many, how long to resolve."""

    window: Duration = Field(14 * 86400.0, gt=0, le=MAX_WINDOW)
    severity: Literal["info", "warning", "critical"] = "critical"
    """Incidents at least this severe count."""
    max_incidents: int = Field(0, ge=0)
    max_time_to_resolve: Duration | None = None
    """Each counted incident resolved within this (one still open counts as too long once
    it is older than this)."""


class RolloutCriterion(Section):
    """Rollouts of the version (``vary: agent_version``, the version as candidate)."""

    window: Duration = Field(90 * 86400.0, gt=0, le=MAX_WINDOW)
    min_promoted: int = Field(1, ge=0)
    max_rolled_back: int = Field(0, ge=0)


class PolicyCriterion(Section):
    """``agent.policy.decision`` on the version's spans: the share of violations."""

    window: Duration = Field(7 * 86400.0, gt=0, le=MAX_WINDOW)
    max_violation_ratio: float = Field(0.0, ge=0, le=1)
    required: bool = False
    """``false``: a version whose spans carry no decision is not judged on it (met)."""


class TrustCriterion(Section):
    """``agent.trust_score`` (0 to 1) on the version's spans."""

    window: Duration = Field(7 * 86400.0, gt=0, le=MAX_WINDOW)
    min_average: float = Field(0.8, ge=0, le=1)
    min_lowest: float | None = Field(None, ge=0, le=1)
    required: bool = False
    """``false``: a version whose spans carry no trust score is not judged on it (met)."""


class TierSpec(Section):
    """One tier and what it asks beyond the tiers below it."""

    name: str
    slo: SLOCriterion | None = None
    budget: BudgetCriterion | None = None
    chaos: ChaosCriterion | None = None
    incidents: IncidentCriterion | None = None
    rollouts: RolloutCriterion | None = None
    policy: PolicyCriterion | None = None
    trust: TrustCriterion | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not TIER_NAME.match(value):
            raise ValueError(
                f"{value[:40]!r} is not a tier name (lowercase letters, digits, _ and -, "
                "at most 32, starting with a letter)"
            )
        return value


def default_tiers() -> list[TierSpec]:
    """Bronze, silver and gold: the shipped defaults (``config/agent-sre.yaml`` says the
    same)."""
    return [
        TierSpec(
            name="bronze",
            slo=SLOCriterion(window=7 * 86400.0, min_events=100),
            budget=BudgetCriterion(window=7 * 86400.0, max_exhaustions=0),
        ),
        TierSpec(
            name="silver",
            slo=SLOCriterion(window=14 * 86400.0, min_events=500),
            chaos=ChaosCriterion(window=30 * 86400.0, min_passed=1, min_score=70.0),
            incidents=IncidentCriterion(window=14 * 86400.0, severity="critical"),
            policy=PolicyCriterion(window=14 * 86400.0, max_violation_ratio=0.01),
        ),
        TierSpec(
            name="gold",
            slo=SLOCriterion(window=30 * 86400.0, min_events=1000),
            chaos=ChaosCriterion(window=30 * 86400.0, min_passed=2, min_score=85.0),
            incidents=IncidentCriterion(
                window=30 * 86400.0, severity="warning", max_time_to_resolve=4 * 3600.0
            ),
            rollouts=RolloutCriterion(window=90 * 86400.0, min_promoted=1, max_rolled_back=0),
            trust=TrustCriterion(window=30 * 86400.0, min_average=0.8),
        ),
    ]


class CertificationConfig(Section):
    """The ``certification:`` section."""

    enabled: bool = True
    """``false``: no evidence is counted and nothing is certified (a rollout step that
    requires a tier then waits)."""
    tiers: list[TierSpec] = Field(default_factory=default_tiers)
    """Lowest first; at least one."""
    bucket: Duration = Field(3600.0, ge=60, le=86400)
    """Span evidence is counted in buckets of this length (windows are whole buckets)."""
    max_versions: int = Field(1000, ge=1, le=100_000)
    """(agent, version) pairs whose evidence is kept; past it the least recently seen goes
    (counted in ``agent_sre_state_evictions_total{map="certification_versions"}``)."""
    max_metric_series: int = Field(500, ge=0, le=100_000)
    """``agent_sre_certification_tier`` series at most (the most recently seen versions)."""
    evaluate_every: Duration = Field(30.0, ge=1, le=3600)

    @field_validator("tiers")
    @classmethod
    def _check_tiers(cls, tiers: list[TierSpec]) -> list[TierSpec]:
        if not tiers:
            raise ValueError("give at least one tier")
        seen: set[str] = set()
        for tier in tiers:
            if tier.name in seen:
                raise ValueError(f"tier {tier.name!r} is given twice")
            seen.add(tier.name)
        return tiers

    @model_validator(mode="after")
    def _something_asked(self) -> CertificationConfig:
        for index, tier in enumerate(self.tiers):
            if not any(getattr(tier, key) is not None for key in _CRITERION_KEYS):
                raise ValueError(
                    f"tiers[{index}] ({tier.name}) asks for nothing: give at least one of "
                    f"{', '.join(_CRITERION_KEYS)}"
                )
        return self

    @property
    def tier_names(self) -> tuple[str, ...]:
        return tuple(tier.name for tier in self.tiers)

    @property
    def retention(self) -> float:
        """How far back any criterion looks (evidence older than this is dropped)."""
        longest = self.bucket
        for tier in self.tiers:
            for key in _CRITERION_KEYS:
                criterion = getattr(tier, key)
                if criterion is not None:
                    longest = max(longest, criterion.window)
        return longest + self.bucket


_CRITERION_KEYS = ("slo", "budget", "chaos", "incidents", "rollouts", "policy", "trust")
