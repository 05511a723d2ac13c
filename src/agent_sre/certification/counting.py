"""The light span observer behind certification: per agent and version, fixed time buckets
of counters (no per-span rows).

Each (agent, version) pair holds, per bucket that saw spans, one row of counters: spans,
tasks, task costs, spend, policy decisions and violations, trust scores, and ``good,
total`` per SLO counted (the SLO's own SLI, judged on the version's spans). The pairs are
kept in a :class:`~agent_sre.bounded.BoundedMap` (``certification_versions``): at most
``max_versions``, the least recently seen first out, idle ones dropped after the longest
window; buckets older than that are dropped as new ones open.

Pure: time comes in as ``now``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent_sre.bounded import BoundedMap
from agent_sre.certification.evidence import (
    BASE_COUNTERS,
    POLICY_CHECKS,
    POLICY_VIOLATIONS,
    SPANS,
    SPEND_USD,
    TASK_COST_N,
    TASK_COST_SUM,
    TASKS,
    TRUST_IGNORED,
    TRUST_MIN,
    TRUST_N,
    TRUST_SUM,
    Evidence,
    SLOSeries,
    empty_row,
)
from agent_sre.slo.compiled import counting_fingerprint
from agent_sre.slo.costs import TraceCosts
from agent_sre.slo.sli import POLICY_VIOLATIONS as VIOLATION_WORDS
from agent_sre.slo.sli import as_number, attribute_keys, make_judge, match_values
from agent_sre.tracing import conventions as c
from agent_sre.tracing.conventions import AgentSpanKind

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agent_sre.bounded import OnEvict
    from agent_sre.slo.sli import Judge
    from agent_sre.slo.spec import SLOSpec
    from agent_sre.tracing.view import AgentSpan, AttrValue

MAX_ID_LENGTH = 256
"""Agent ids and versions longer than this are cut (a client cannot make one entry huge)."""
MAX_COST_USD = 1e6
"""A task cost or span spend above this (or below 0) is not money but garbage: ignored."""

Key = tuple[str, str]


@dataclass(frozen=True)
class SLOTracker:
    """One SLO as certification counts it: its filters and judge, and where its pair sits."""

    name: str
    fingerprint: str
    target: float
    kinds: frozenset[AgentSpanKind]
    checks: tuple[tuple[str, frozenset[AttrValue]], ...]
    judge: Judge


def trackers_of(specs: Sequence[SLOSpec]) -> tuple[SLOTracker, ...]:
    costs = TraceCosts(1)  # cost_per_task reads agent.task.cost_usd only (no trace sums)
    return tuple(
        SLOTracker(
            name=spec.name,
            fingerprint=counting_fingerprint(spec),
            target=spec.target,
            kinds=spec.sli.span_kinds(),
            checks=tuple(
                (key, match_values(wanted))
                for key, wanted in spec.sli.match.items()
                if key != c.AGENT_SPAN_KIND
            ),
            judge=make_judge(spec.sli, costs),
        )
        for spec in specs
    )


class VersionCounts:
    """The buckets of one agent version."""

    __slots__ = ("agent", "version", "buckets", "current", "current_at", "first_seen",
                 "last_seen", "dirty")  # fmt: skip

    def __init__(self, agent: str, version: str) -> None:
        self.agent = agent
        self.version = version
        self.buckets: dict[float, list[float]] = {}
        """Bucket start (unix seconds) -> counters."""
        self.current: list[float] = []
        self.current_at = -math.inf
        self.first_seen: float | None = None
        self.last_seen: float | None = None
        self.dirty: set[float] = set()
        """Buckets changed since the last :meth:`CertificationCounter.take_dirty`."""


class CertificationCounter:
    """Counts spans into per-version buckets; builds the span part of an :class:`Evidence`.

    Args:
        slos: the SLOs whose SLIs are counted per version.
        bucket: bucket length in seconds.
        retention: buckets older than this are dropped; a version idle this long goes.
        max_versions: (agent, version) pairs kept.
        on_evict: hears of each pair evicted (the daemon counts and forgets them).
    """

    def __init__(
        self,
        slos: Sequence[SLOSpec],
        bucket: float,
        retention: float,
        max_versions: int,
        on_evict: OnEvict | None = None,
    ) -> None:
        self.bucket = bucket
        self.retention = retention
        self.trackers = trackers_of(slos)
        self.width = BASE_COUNTERS + 2 * len(self.trackers)
        self.evicted: list[Key] = []
        """Pairs evicted since the daemon last looked (it deletes their stored rows)."""
        outer = on_evict

        def evicted(name: str, key: Any) -> None:
            self.evicted.append(key)
            if outer is not None:
                outer(name, key)

        self.versions: BoundedMap[Key, VersionCounts] = BoundedMap(
            "certification_versions", max_versions, retention, evicted
        )
        by_kind: dict[AgentSpanKind, list[tuple[int, SLOTracker]]] = {}
        for index, tracker in enumerate(self.trackers):
            for kind in tracker.kinds:
                by_kind.setdefault(kind, []).append((BASE_COUNTERS + 2 * index, tracker))
        self._by_kind = {kind: tuple(pairs) for kind, pairs in by_kind.items()}
        wanted = {c.AGENT_VERSION, c.AGENT_TASK_COST_USD, c.AGENT_SRE_COST_USD,
                  c.AGENT_POLICY_DECISION, c.AGENT_TRUST_SCORE}  # fmt: skip
        for spec in slos:
            wanted.update(spec.sli.match, attribute_keys(spec.sli))
        self.wanted_keys = frozenset(wanted - {c.AGENT_SPAN_KIND})

    def __len__(self) -> int:
        return len(self.versions)

    # -- the hot path -------------------------------------------------------------------

    def observe(self, span: AgentSpan, now: float) -> None:
        """Counts one span (received at ``now``) into its agent version's bucket."""
        # hot path: per span
        attrs = span.attrs
        agent = attrs.get(c.AGENT_ID)
        if agent is None or agent == "":
            # the view's agent_id, inlined: most spans carry none and leave here
            agent = attrs.get(c.GEN_AI_AGENT_ID) or attrs.get(c.GEN_AI_AGENT_NAME)
            if agent is None or agent == "":
                return
        if agent.__class__ is not str:
            agent = str(agent)
        version = attrs.get(c.AGENT_VERSION)
        version = "" if version is None else (version if version.__class__ is str else str(version))
        if len(agent) > MAX_ID_LENGTH or len(version) > MAX_ID_LENGTH:
            agent, version = agent[:MAX_ID_LENGTH], version[:MAX_ID_LENGTH]
        key = (agent, version)
        entry = self.versions.peek(key)
        if entry is None or entry.current_at + self.bucket <= now or now < entry.current_at:
            row = self._roll(key, entry, now)
        else:
            row = entry.current
        row[SPANS] += 1
        kind = span.kind
        if kind is AgentSpanKind.AGENT_TASK:
            row[TASKS] += 1
            cost = attrs.get(c.AGENT_TASK_COST_USD)
            if cost is not None:
                value = as_number(cost)
                if value is not None and 0 <= value <= MAX_COST_USD:
                    row[TASK_COST_N] += 1
                    row[TASK_COST_SUM] += value
        spend = attrs.get(c.AGENT_SRE_COST_USD)
        if (
            spend is not None
            and (spend.__class__ is float or spend.__class__ is int)
            and 0 <= spend <= MAX_COST_USD
        ):
            row[SPEND_USD] += spend
        decision = attrs.get(c.AGENT_POLICY_DECISION)
        if decision is not None and decision.__class__ is str:
            row[POLICY_CHECKS] += 1
            if decision.strip().lower() in VIOLATION_WORDS:
                row[POLICY_VIOLATIONS] += 1
        trust = attrs.get(c.AGENT_TRUST_SCORE)
        if trust is not None:
            score = as_number(trust)
            if score is not None and 0.0 <= score <= 1.0:  # NaN fails both
                row[TRUST_N] += 1
                row[TRUST_SUM] += score
                if score < row[TRUST_MIN]:
                    row[TRUST_MIN] = score
            else:
                row[TRUST_IGNORED] += 1
        pairs = self._by_kind.get(kind)
        if pairs is not None:
            for at, tracker in pairs:
                for check_key, accepted in tracker.checks:
                    if attrs.get(check_key) not in accepted:
                        break
                else:
                    verdict = tracker.judge(span)
                    if verdict is not None:
                        row[at + 1] += 1
                        if verdict:
                            row[at] += 1

    def _roll(self, key: Key, entry: VersionCounts | None, now: float) -> list[float]:
        """The row of ``now``'s bucket for ``key`` (a new entry, or a new bucket)."""
        if entry is not None:
            # marks it used (once per bucket); None when it sat idle past the retention
            entry = self.versions.get(key, now)
        if entry is None:
            entry = VersionCounts(*key)
            entry.first_seen = now
            self.versions.put(key, entry, now)
        start = math.floor(now / self.bucket) * self.bucket
        row = entry.buckets.get(start)
        if row is None:
            row = entry.buckets[start] = empty_row(len(self.trackers))
            self._drop_old(entry, now)
        entry.current, entry.current_at = row, start
        entry.last_seen = now
        entry.dirty.add(start)
        return row

    def _drop_old(self, entry: VersionCounts, now: float) -> None:
        oldest = now - self.retention
        for at in [at for at in entry.buckets if at + self.bucket < oldest]:
            del entry.buckets[at]
            entry.dirty.add(at)  # saved as gone

    # -- reading ------------------------------------------------------------------------

    def keys(self) -> list[Key]:
        return self.versions.keys()

    def versions_of(self, agent: str) -> list[VersionCounts]:
        return [entry for (a, _), entry in self.versions.items() if a == agent]

    def evidence(self, agent: str, version: str, now: float) -> Evidence:
        """The span part of the evidence of one version (empty when never seen)."""
        evidence = Evidence(agent, version, self.bucket)
        entry = self.versions.peek((agent, version))
        for tracker in self.trackers:
            evidence.slos[tracker.name] = SLOSeries(tracker.target, {})
        if entry is None:
            return evidence
        evidence.first_seen, evidence.last_seen = entry.first_seen, entry.last_seen
        oldest = now - self.retention
        for at, row in sorted(entry.buckets.items()):
            if at + self.bucket < oldest:
                continue
            evidence.usage[at] = row[:BASE_COUNTERS]
            for index, tracker in enumerate(self.trackers):
                good, total = row[BASE_COUNTERS + 2 * index : BASE_COUNTERS + 2 * index + 2]
                if total:
                    evidence.slos[tracker.name].buckets[at] = (good, total)
        return evidence

    # -- persistence --------------------------------------------------------------------

    def take_dirty(self) -> tuple[list[tuple[str, str, float, dict[str, Any] | None]], list[Key]]:
        """The buckets changed since the last call, as stored rows (None: deleted), and the
        pairs evicted since then; both are forgotten here."""
        rows: list[tuple[str, str, float, dict[str, Any] | None]] = []
        for (agent, version), entry in self.versions.items():
            if not entry.dirty:
                continue
            for at in sorted(entry.dirty):
                row = entry.buckets.get(at)
                rows.append((agent, version, at, None if row is None else self.stored(row)))
            entry.dirty.clear()
        evicted, self.evicted = self.evicted, []
        return rows, evicted

    def stored(self, row: list[float]) -> dict[str, Any]:
        """A bucket's stored form: base counters, and per SLO (by what it counts) its pair."""
        return {
            "c": row[:BASE_COUNTERS],
            "slo": {
                t.fingerprint: row[BASE_COUNTERS + 2 * i : BASE_COUNTERS + 2 * i + 2]
                for i, t in enumerate(self.trackers)
                if row[BASE_COUNTERS + 2 * i + 1]
            },
        }

    def load(self, agent: str, version: str, at: float, data: dict[str, Any], now: float) -> bool:
        """Takes back one stored bucket (older than the retention: skipped). Returns False
        for a malformed one."""
        if at + self.bucket < now - self.retention:
            return True
        base = data.get("c") if isinstance(data, dict) else None
        if not isinstance(base, list) or len(base) != BASE_COUNTERS:
            return False
        row = empty_row(len(self.trackers))
        try:
            for index, value in enumerate(base):
                row[index] = _finite(value)
            pairs = data.get("slo") or {}
            for index, tracker in enumerate(self.trackers):
                pair = pairs.get(tracker.fingerprint)
                if pair is not None:
                    row[BASE_COUNTERS + 2 * index] = _finite(pair[0])
                    row[BASE_COUNTERS + 2 * index + 1] = _finite(pair[1])
        except (TypeError, ValueError, IndexError, AttributeError):
            return False
        key = (agent[:MAX_ID_LENGTH], version[:MAX_ID_LENGTH])
        entry = self.versions.peek(key)
        if entry is None:
            entry = VersionCounts(*key)
            self.versions.put(key, entry, at)
        entry.buckets[at] = row
        entry.first_seen = at if entry.first_seen is None else min(entry.first_seen, at)
        last = at + self.bucket
        entry.last_seen = last if entry.last_seen is None else max(entry.last_seen, last)
        return True

    def settle(self) -> None:
        """After loading: each pair marked used at its last bucket, oldest first (so idle
        expiry and the cap go by when a version was last seen)."""
        entries = sorted(self.versions.items(), key=lambda item: item[1].last_seen or 0.0)
        for key, entry in entries:
            self.versions.put(key, entry, entry.last_seen or 0.0)

    def adopt(self, old: CertificationCounter, now: float) -> None:
        """Takes over ``old``'s buckets (a reload): SLO pairs follow what they count."""
        for (agent, version), entry in old.versions.items():
            for at, row in entry.buckets.items():
                self.load(agent, version, at, old.stored(row), now)
            mine = self.versions.peek((agent, version))
            if mine is not None:
                mine.first_seen, mine.last_seen = entry.first_seen, entry.last_seen
                mine.dirty = set(entry.dirty)
        self.settle()


def _finite(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number) or not -1e15 <= number <= 1e15:
        raise ValueError(f"{value!r} is not a count")
    return number
