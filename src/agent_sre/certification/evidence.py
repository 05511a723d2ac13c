"""What certification judges: the evidence of one agent version, as plain values.

An :class:`Evidence` holds the version's span counts in fixed time buckets (its SLIs per
SLO, tasks, spend, policy decisions, trust scores) and the events other engines kept that
concern it (budget exhaustions, chaos runs, incidents, rollouts). It is JSON-able
(:meth:`Evidence.to_dict`/:meth:`Evidence.from_dict`), so a verdict can be recomputed from a
recorded evidence set: :func:`agent_sre.certification.verdict.evaluate` reads nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# The counters of one bucket of span evidence (positions in a row; SLO pairs follow).
SPANS, TASKS, TASK_COST_N, TASK_COST_SUM, SPEND_USD = 0, 1, 2, 3, 4
POLICY_CHECKS, POLICY_VIOLATIONS = 5, 6
TRUST_N, TRUST_SUM, TRUST_MIN, TRUST_IGNORED = 7, 8, 9, 10
BASE_COUNTERS = 11
"""Counters before the per-SLO ``good, total`` pairs."""
NO_TRUST = 2.0
"""``TRUST_MIN`` of a bucket that saw no trust score (scores are 0 to 1)."""
USAGE_FIELDS = (
    "spans",
    "tasks",
    "task_cost_n",
    "task_cost_usd",
    "spend_usd",
    "policy_checks",
    "policy_violations",
    "trust_n",
    "trust_sum",
    "trust_min",
    "trust_ignored",
)


def empty_row(slos: int) -> list[float]:
    row = [0.0] * (BASE_COUNTERS + 2 * slos)
    row[TRUST_MIN] = NO_TRUST
    return row


def merge_rows(into: list[float], row: list[float]) -> None:
    """Adds ``row`` into ``into`` (same layout): sums, and the lowest trust score."""
    for index, value in enumerate(row):
        if index == TRUST_MIN:
            into[index] = min(into[index], value)
        else:
            into[index] += value


@dataclass(frozen=True)
class SLOSeries:
    """One SLO's events of the version, per bucket start (unix seconds): ``(good, total)``."""

    target: float
    buckets: dict[float, tuple[float, float]] = field(default_factory=dict)

    def window(self, start: float, end: float) -> tuple[float, float]:
        good = total = 0.0
        for at, (g, t) in self.buckets.items():
            if start <= at <= end:
                good += g
                total += t
        return good, total


@dataclass(frozen=True)
class Mark:
    """Something that happened at a time: a budget exhaustion (``ref``: the budget)."""

    at: float
    ref: str
    detail: str = ""


@dataclass(frozen=True)
class ChaosRun:
    """A chaos run that targeted the version (what the chaos engine kept of it)."""

    id: str
    experiment: str
    state: str
    started_at: float
    ended_at: float | None
    score: float | None
    faults: dict[str, int] = field(default_factory=dict)

    @property
    def injected(self) -> int:
        return sum(self.faults.values())


@dataclass(frozen=True)
class IncidentRecord:
    """An incident naming the agent while the version ran."""

    id: str
    severity: str
    opened_at: float
    resolved_at: float | None
    title: str = ""


@dataclass(frozen=True)
class RolloutRecord:
    """How a rollout of the version (as its candidate) ended: ``promoted``,
    ``rolled_back`` or ``aborted`` (``progressing``/``paused`` while it runs)."""

    name: str
    outcome: str
    at: float


@dataclass
class Evidence:
    """Everything known of one agent version, for :func:`~agent_sre.certification.verdict.
    evaluate`.

    Attributes:
        bucket: the length of a bucket (seconds); bucket keys are their starts.
        usage: per bucket start, the counters of :data:`USAGE_FIELDS` (positions as the
            module's constants).
        slos: per SLO name, its target and per-bucket ``(good, total)``.
    """

    agent: str
    version: str
    bucket: float
    first_seen: float | None = None
    last_seen: float | None = None
    usage: dict[float, list[float]] = field(default_factory=dict)
    slos: dict[str, SLOSeries] = field(default_factory=dict)
    exhaustions: list[Mark] = field(default_factory=list)
    chaos: list[ChaosRun] = field(default_factory=list)
    incidents: list[IncidentRecord] = field(default_factory=list)
    rollouts: list[RolloutRecord] = field(default_factory=list)

    def usage_window(self, start: float, end: float) -> list[float]:
        """The usage counters summed over the buckets starting in ``[start, end]``."""
        total = empty_row(0)
        for at, row in self.usage.items():
            if start <= at <= end:
                merge_rows(total, row[:BASE_COUNTERS])
        return total

    def seen_between(self, start: float, end: float) -> bool:
        """Whether the version sent spans in a bucket overlapping ``[start, end]``."""
        return any(at <= end and at + self.bucket >= start for at in self.usage)

    # -- the recorded form ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "version": self.version,
            "bucket_seconds": self.bucket,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "usage": [
                {"at": at, **{name: _plain(row[i]) for i, name in enumerate(USAGE_FIELDS)}}
                for at, row in sorted(self.usage.items())
            ],
            "slos": {
                name: {
                    "target": series.target,
                    "buckets": [
                        {"at": at, "good": g, "total": t}
                        for at, (g, t) in sorted(series.buckets.items())
                    ],
                }
                for name, series in sorted(self.slos.items())
            },
            "budget_exhaustions": [m.__dict__.copy() for m in self.exhaustions],
            "chaos_runs": [{**run.__dict__, "faults": dict(run.faults)} for run in self.chaos],
            "incidents": [record.__dict__.copy() for record in self.incidents],
            "rollouts": [record.__dict__.copy() for record in self.rollouts],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evidence:
        """Reads :meth:`to_dict`'s form.

        Raises:
            KeyError, TypeError or ValueError: a malformed record.
        """
        evidence = cls(
            agent=str(data["agent"]),
            version=str(data["version"]),
            bucket=_finite(data["bucket_seconds"]),
            first_seen=_maybe(data.get("first_seen")),
            last_seen=_maybe(data.get("last_seen")),
        )
        for entry in data.get("usage", []):
            row = empty_row(0)
            for index, name in enumerate(USAGE_FIELDS):
                if name in entry:
                    row[index] = _finite(entry[name])
            evidence.usage[_finite(entry["at"])] = row
        for name, series in (data.get("slos") or {}).items():
            buckets = {
                _finite(b["at"]): (_finite(b["good"]), _finite(b["total"]))
                for b in series.get("buckets", [])
            }
            evidence.slos[str(name)] = SLOSeries(_finite(series["target"]), buckets)
        evidence.exhaustions = [
            Mark(_finite(m["at"]), str(m["ref"]), str(m.get("detail", "")))
            for m in data.get("budget_exhaustions", [])
        ]
        evidence.chaos = [
            ChaosRun(
                id=str(r["id"]),
                experiment=str(r["experiment"]),
                state=str(r["state"]),
                started_at=_finite(r["started_at"]),
                ended_at=_maybe(r.get("ended_at")),
                score=_maybe(r.get("score")),
                faults={str(k): int(v) for k, v in (r.get("faults") or {}).items()},
            )
            for r in data.get("chaos_runs", [])
        ]
        evidence.incidents = [
            IncidentRecord(
                id=str(i["id"]),
                severity=str(i["severity"]),
                opened_at=_finite(i["opened_at"]),
                resolved_at=_maybe(i.get("resolved_at")),
                title=str(i.get("title", "")),
            )
            for i in data.get("incidents", [])
        ]
        evidence.rollouts = [
            RolloutRecord(str(r["name"]), str(r["outcome"]), _finite(r["at"]))
            for r in data.get("rollouts", [])
        ]
        return evidence


def _plain(value: float) -> float | int:
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _finite(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def _maybe(value: Any) -> float | None:
    return None if value is None else _finite(value)
