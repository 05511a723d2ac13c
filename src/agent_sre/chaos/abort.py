"""Abort rules and the steady-state hypothesis, judged from plain values.

The runtime gathers what the rules read (SLO burn rates and budgets from the SLO reports,
the experiment's own counts of targeted calls and their spend) into :class:`Readings`;
:func:`first_tripped` says which rule, if any, stops the experiment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agent_sre.chaos.spec import AbortRule, SteadyStateSpec
    from agent_sre.slo.report import SLOReport


@dataclass(frozen=True)
class SLOReading:
    """What the rules read of one SLO: burn rates by window (seconds), budget left, status."""

    burn_rates: dict[float, float]
    budget_remaining: float
    status: str


@dataclass(frozen=True)
class Readings:
    """Everything the abort rules read at one moment."""

    slos: dict[str, SLOReading] = field(default_factory=dict)
    calls: int = 0
    """Targeted calls since the run started."""
    errors: int = 0
    spend_usd: float = 0.0


def slo_readings(reports: Sequence[SLOReport]) -> dict[str, SLOReading]:
    """The SLO reports reduced to what the rules read (all label sets summed)."""
    out = {}
    for report in reports:
        overall = report.overall
        out[report.name] = SLOReading(
            burn_rates={w.seconds: w.burn_rate for w in overall.windows},
            budget_remaining=overall.budget.remaining_ratio,
            status=overall.status.value,
        )
    return out


@dataclass(frozen=True)
class Tripped:
    """A rule that stopped a run, and why in words."""

    reason: str
    """The rule's kind (``slo_burn_rate``, ``slo_budget``, ``error_ratio``, ``spend``)."""
    message: str
    value: float


def check(rule: AbortRule, readings: Readings) -> Tripped | None:
    """``rule`` against ``readings``: the trip, or None while it holds."""
    if rule.burn_rate_above is not None or rule.budget_remaining_below is not None:
        slo = readings.slos.get(rule.slo)
        if slo is None:
            return None  # an SLO not (yet) defined cannot trip; config checks name it
        if rule.burn_rate_above is not None:
            burn = slo.burn_rates.get(rule.window)
            if burn is not None and burn > rule.burn_rate_above:
                return Tripped(
                    rule.reason,
                    f"SLO {rule.slo} burn rate {burn:.3g} over {rule.window:g}s is above "
                    f"{rule.burn_rate_above:g}",
                    burn,
                )
            return None
        assert rule.budget_remaining_below is not None
        if slo.budget_remaining < rule.budget_remaining_below:
            return Tripped(
                rule.reason,
                f"SLO {rule.slo} error budget remaining {slo.budget_remaining:.3g} is below "
                f"{rule.budget_remaining_below:g}",
                slo.budget_remaining,
            )
        return None
    if rule.error_ratio_above is not None:
        if readings.calls < rule.min_calls:
            return None
        ratio = readings.errors / readings.calls
        if ratio > rule.error_ratio_above:
            return Tripped(
                rule.reason,
                f"targeted calls failed {ratio:.1%} ({readings.errors}/{readings.calls}), "
                f"above {rule.error_ratio_above:.1%}",
                ratio,
            )
        return None
    assert rule.spend_above_usd is not None
    if readings.spend_usd > rule.spend_above_usd:
        return Tripped(
            rule.reason,
            f"targeted calls cost ${readings.spend_usd:.4f}, above ${rule.spend_above_usd:g}",
            readings.spend_usd,
        )
    return None


def first_tripped(rules: Sequence[AbortRule], readings: Readings) -> Tripped | None:
    for rule in rules:
        tripped = check(rule, readings)
        if tripped is not None:
            return tripped
    return None


def needs_slos(rules: Sequence[AbortRule], steady: SteadyStateSpec) -> bool:
    """Whether judging these needs the SLO reports (computing them is not free)."""
    return bool(steady.slos_healthy) or any(rule.slo for rule in rules)


def steady_state_problems(
    steady: SteadyStateSpec, slos: dict[str, SLOReading], recent_calls: int, recent_errors: int
) -> list[str]:
    """Why the steady-state hypothesis does not hold (empty: it holds)."""
    problems = []
    for name in steady.slos_healthy:
        slo = slos.get(name)
        if slo is None:
            problems.append(f"SLO {name} is not defined")
        elif slo.status != "HEALTHY":
            problems.append(f"SLO {name} is {slo.status}, not HEALTHY")
    if (
        steady.max_error_ratio is not None
        and recent_calls
        and recent_calls >= steady.min_calls
        and recent_errors / recent_calls > steady.max_error_ratio
    ):
        problems.append(
            f"targeted calls failed {recent_errors / recent_calls:.1%} recently, above "
            f"{steady.max_error_ratio:.1%}"
        )
    return problems
