"""Which budget counters a call is charged to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent_sre.cost.ledger import Charge
from agent_sre.cost.windows import position

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from agent_sre.cost.spec import BudgetSpec


@dataclass(frozen=True)
class CallIdentity:
    """Who makes a call, from headers or W3C baggage (empty strings when unknown)."""

    agent_id: str = ""
    task_id: str = ""
    team: str = ""
    agent_version: str = ""


UNKNOWN_AGENT = "unknown"


def charges_for(
    budgets: Sequence[BudgetSpec], who: CallIdentity, node: str, now: float
) -> tuple[Charge, ...]:
    """The counters of every budget that applies to ``who`` at ``now``.

    A ``task`` budget does not apply to a call without a task id, nor a ``team`` budget to
    a call without a team: there is no subject to keep a counter for.
    """
    out = []
    for spec in budgets:
        if spec.agents and who.agent_id not in spec.agents:
            continue
        if spec.teams and who.team not in spec.teams:
            continue
        subject = _subject(spec, who, node)
        if subject is None:
            continue
        where = position(spec.window, now)
        out.append(
            Charge(
                budget=spec.name,
                subject=subject,
                bucket=where.bucket,
                span=where.span,
                limit_usd=spec.limit_usd,
                enforce=spec.action != "alert",
            )
        )
    return tuple(out)


def _subject(spec: BudgetSpec, who: CallIdentity, node: str) -> str | None:
    if spec.scope == "task":
        return who.task_id or None
    if spec.scope == "agent":
        return who.agent_id or UNKNOWN_AGENT
    if spec.scope == "team":
        return who.team or None
    if spec.scope == "node":
        return node
    return "*"


def oldest_buckets(budgets: Sequence[BudgetSpec], now: float) -> dict[str, int]:
    """The oldest bucket still inside each budget's window at ``now`` (``per_task`` budgets
    have no end, so none is given for them): anything older can be forgotten."""
    return {
        spec.name: position(spec.window, now).first for spec in budgets if spec.window != "per_task"
    }


def spend_by_subject(
    spec: BudgetSpec, counters: Iterable[tuple[str, str, int, float]], now: float
) -> dict[str, float]:
    """Spend of each subject of ``spec`` in its current window, from
    ``(budget, subject, bucket, spent_usd)`` counters."""
    where = position(spec.window, now)
    first, last = where.first, where.bucket
    out: dict[str, float] = {}
    for budget, subject, bucket, spent in counters:
        if budget == spec.name and first <= bucket <= last:
            out[subject] = out.get(subject, 0.0) + spent
    return out
