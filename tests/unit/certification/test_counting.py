"""The certification span observer: buckets per agent version, SLIs per version, bounded,
hostile values ignored, and its stored form read back."""

from __future__ import annotations

import math

from agent_sre.certification.counting import MAX_ID_LENGTH, CertificationCounter
from agent_sre.certification.evidence import TASKS, TRUST_IGNORED, TRUST_MIN, TRUST_N, TRUST_SUM
from agent_sre.certification.spec import default_tiers
from agent_sre.certification.verdict import evaluate
from agent_sre.slo.spec import SLOSpec
from agent_sre.tracing.conventions import AgentSpanKind
from agent_sre.tracing.view import AgentSpan, AttrValue

DAY = 86400.0
SLO = SLOSpec.model_validate(
    {"name": "task-success", "target": 0.99, "sli": {"kind": "task_success"}}
)


def span(
    agent: str | None = "planner",
    version: AttrValue | None = "1.0",
    kind: AgentSpanKind = AgentSpanKind.AGENT_TASK,
    error: bool = False,
    attrs: dict[str, AttrValue] | None = None,
) -> AgentSpan:
    values: dict[str, AttrValue] = dict(attrs or {})
    if agent is not None:
        values["agent.id"] = agent
    if version is not None:
        values["agent.version"] = version
    return AgentSpan(kind, True, "s", b"\x01" * 16, b"\x02" * 8, 0, 1000, error, values)


def counter(max_versions: int = 100) -> CertificationCounter:
    return CertificationCounter([SLO], 3600.0, 31 * DAY, max_versions)


def test_spans_count_per_agent_version_and_bucket() -> None:
    c = counter()
    now = 10 * DAY
    for _ in range(99):
        c.observe(span(), now)
    c.observe(span(error=True), now)
    c.observe(span(version="2.0"), now + 3600)
    c.observe(span(agent=None), now)  # no agent: not counted
    one = c.evidence("planner", "1.0", now)
    assert one.slos["task-success"].window(0, now) == (99.0, 100.0)
    assert sum(row[TASKS] for row in one.usage.values()) == 100
    two = c.evidence("planner", "2.0", now + 3600)
    assert two.slos["task-success"].window(0, now + 3600) == (1.0, 1.0)
    assert sorted(c.keys()) == [("planner", "1.0"), ("planner", "2.0")]


def test_hostile_trust_scores_and_costs_are_ignored() -> None:
    c = counter()
    for value in (math.nan, math.inf, -math.inf, 1e300, -1.0, 2, "NaN", "1e308", "huge"):
        c.observe(span(kind=AgentSpanKind.TOOL_CALL, attrs={"agent.trust_score": value}), 0.0)
    c.observe(span(kind=AgentSpanKind.TOOL_CALL, attrs={"agent.trust_score": 0.5}), 0.0)
    c.observe(span(kind=AgentSpanKind.TOOL_CALL, attrs={"agent.trust_score": "0.9"}), 0.0)
    c.observe(span(attrs={"agent.task.cost_usd": math.nan}), 0.0)
    c.observe(span(attrs={"agent.task.cost_usd": -5.0}), 0.0)
    (row,) = c.evidence("planner", "1.0", 0.0).usage.values()
    assert row[TRUST_N] == 2 and row[TRUST_SUM] == 1.4 and row[TRUST_MIN] == 0.5
    assert row[TRUST_IGNORED] == 9
    assert row[2] == 0  # no task cost counted
    verdict = evaluate(c.evidence("planner", "1.0", 0.0), default_tiers(), 0.0)
    trust = [x for x in verdict.criteria if x.name == "trust_score"][0]
    assert trust.evidence["ignored"] == 9 and trust.evidence["average"] == 0.7


def test_thousands_of_versions_stay_within_the_cap() -> None:
    evicted: list[object] = []
    c = CertificationCounter([SLO], 3600.0, 31 * DAY, 50, lambda name, key: evicted.append(key))
    for index in range(5000):
        c.observe(span(version=f"v{index}"), float(index))
    assert len(c) == 50
    assert len(evicted) == 4950
    keys = c.keys()
    assert ("planner", "v4999") in keys
    assert ("planner", "v0") not in keys
    _, gone = c.take_dirty()
    assert len(gone) == 4950


def test_huge_ids_are_cut_and_odd_types_read_as_text() -> None:
    c = counter()
    c.observe(span(agent="a" * 100_000, version="v" * 100_000), 0.0)
    c.observe(span(version=3), 0.0)
    c.observe(span(version=True), 0.0)
    keys = c.keys()
    assert ("a" * MAX_ID_LENGTH, "v" * MAX_ID_LENGTH) in keys
    assert ("planner", "3") in keys and ("planner", "True") in keys


def test_old_buckets_leave_as_new_ones_open() -> None:
    c = CertificationCounter([SLO], 3600.0, 2 * DAY, 10)
    c.observe(span(), 0.0)
    c.observe(span(), 5 * DAY)
    evidence = c.evidence("planner", "1.0", 5 * DAY)
    assert list(evidence.usage) == [5 * DAY]


def test_stored_buckets_are_read_back_and_follow_their_slo() -> None:
    c = counter()
    for index in range(10):
        c.observe(span(error=index == 0), 3600.0 * index)
    rows, _ = c.take_dirty()
    assert len(rows) == 10 and c.take_dirty() == ([], [])
    other = SLOSpec.model_validate(
        {"name": "latency", "target": 0.9, "sli": {"kind": "latency", "threshold": 1}}
    )
    fresh = CertificationCounter([other, SLO], 3600.0, 31 * DAY, 100)
    for agent, version, at, data in rows:
        assert data is not None
        assert fresh.load(agent, version, at, data, 36000.0)
    fresh.settle()
    evidence = fresh.evidence("planner", "1.0", 36000.0)
    assert evidence.slos["task-success"].window(0, 36000.0) == (9.0, 10.0)
    assert evidence.slos["latency"].buckets == {}
    assert not fresh.load("planner", "1.0", 0.0, {"c": ["x"] * 11}, 36000.0)
    assert not fresh.load("planner", "1.0", 0.0, {"c": [math.nan] * 11}, 36000.0)
    assert not fresh.load("planner", "1.0", 0.0, {"nothing": 1}, 36000.0)


def test_reload_keeps_the_counts() -> None:
    old = counter()
    old.observe(span(), 100.0)
    new = counter()
    new.adopt(old, 200.0)
    assert new.evidence("planner", "1.0", 200.0).slos["task-success"].window(0, 200.0) == (1, 1)
