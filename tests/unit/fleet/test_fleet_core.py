"""The fleet core: the summary gate, the exact sum over the same buckets, staleness, bounds."""

from __future__ import annotations

import json
import zlib

import pytest

from agent_sre.fleet.agents import AgentRegistry
from agent_sre.fleet.summary import (
    MAGIC,
    MAX_AGENTS,
    AgentRow,
    AgentSLORow,
    IncidentRow,
    NodeSummary,
    SLORow,
    SummaryError,
    decode,
    encode,
    to_data,
)
from agent_sre.fleet.view import build_view, rfc3339
from agent_sre.tracing.conventions import AgentSpanKind
from agent_sre.tracing.view import AgentSpan

HOUR = 3600
NOW = 1_800_000_000.0  # a whole hour
H = int(NOW // HOUR)


def summary(node: str, at: float = NOW, **parts: object) -> NodeSummary:
    return NodeSummary(node=node, version="0.1.0", published_at=at, **parts)  # type: ignore[arg-type]


def slo(buckets: list[tuple[int, int, int]], status: str = "healthy", **kw: object) -> SLORow:
    spec = {"name": "chat", "target": 0.99, "window_s": 30 * 86400.0, **kw}
    return SLORow(spec["name"], spec["target"], spec["window_s"], status, tuple(buckets))  # type: ignore[arg-type]


def test_a_summary_survives_its_encoding() -> None:
    original = summary(
        "n1",
        agents=(AgentRow("a1", ("1.0", "1.1"), NOW - 5, 10, 1, 0.25),),
        slos=(slo([(H - 1, 5, 6), (H, 9, 10)]),),
        agent_slos=(AgentSLORow("a1", "chat", 3, 4),),
        incidents=(IncidentRow("inc-1", "critical", "down", NOW - 60, ("a1",)),),
        dropped={"agents": 2},
    )
    data = encode(original)
    assert data.startswith(MAGIC)
    assert decode(data) == original


def test_fleet_attainment_is_the_sum_over_the_same_buckets() -> None:
    # n1 and n2 count in the window; n2's bucket from before the 30d window does not count,
    # nor does a bucket from an hour after now (a clock ahead)
    old = H - 30 * 24
    nodes = [
        summary("n1", slos=(slo([(H - 2, 90, 100), (H, 10, 10)]),)),
        summary("n2", slos=(slo([(old, 0, 1000), (H - 1, 50, 100), (H + 1, 0, 7)]),)),
    ]
    view = build_view(nodes, NOW + 10, ttl=30, stale_after=21)
    [entry] = view.slos
    assert (entry["good"], entry["total"]) == (150, 210)
    assert entry["attainment"] == 150 / 210
    assert entry["nodes"] == 2
    assert entry["error_budget_remaining"] == pytest.approx(1 - (60 / 210) / 0.01)
    assert entry["status"] == "exhausted"
    assert entry["window"] == "30d"


def test_a_node_past_the_ttl_stops_counting_and_covers_says_so() -> None:
    nodes = [
        summary("n1", at=NOW, slos=(slo([(H, 99, 100)]),)),
        summary("n2", at=NOW - 25, slos=(slo([(H, 0, 100)]),)),
        summary("n3", at=NOW - 31, slos=(slo([(H, 0, 100)]),)),
    ]
    view = build_view(nodes, NOW, ttl=30, stale_after=21)
    assert view.covers == {"nodes": 2, "up": 1, "stale": 1}
    assert view.expired == ["n3"]
    assert [n.state for n in view.nodes] == ["up", "stale"]
    assert (view.slos[0]["good"], view.slos[0]["total"]) == (99, 200)
    later = build_view(nodes, NOW + 26, ttl=30, stale_after=21)
    assert later.covers == {"nodes": 1, "up": 0, "stale": 1}
    assert later.slos[0]["total"] == 100


def test_the_newest_summary_of_a_node_wins() -> None:
    nodes = [summary("n1", at=NOW - 10), summary("n1", at=NOW)]
    view = build_view(nodes, NOW, ttl=30, stale_after=21)
    assert len(view.nodes) == 1 and view.nodes[0].age_seconds == 0


def test_status_is_the_worst_burn_status_unless_the_sum_is_exhausted() -> None:
    nodes = [
        summary("n1", slos=(slo([(H, 1000, 1000)], status="critical"),)),
        summary("n2", slos=(slo([(H, 5, 10)], status="exhausted"),)),
    ]
    [entry] = build_view(nodes, NOW, 30, 21).slos
    assert entry["status"] == "critical"  # 5 bad of 1010 is within 1%: not exhausted
    empty = build_view([summary("n1", slos=(slo([]),))], NOW, 30, 21).slos[0]
    assert empty["status"] == "unknown" and empty["attainment"] is None


def test_nodes_disagreeing_on_an_slo_are_named_not_added() -> None:
    nodes = [
        summary("n1", slos=(slo([(H, 1, 1)]),)),
        summary("n2", slos=(slo([(H, 1, 1)]),)),
        summary("n3", slos=(slo([(H, 0, 5)], target=0.9),)),
    ]
    [entry] = build_view(nodes, NOW, 30, 21).slos
    assert entry["target"] == 0.99 and entry["total"] == 2 and entry["mismatched"] == ["n3"]


def test_agents_across_nodes_paged_searched_and_one_in_detail() -> None:
    n1 = summary(
        "n1",
        agents=(AgentRow("alpha", ("1",), NOW - 5, 10, 1, 0.5), AgentRow("beta", (), NOW, 1, 0, 0)),
        agent_slos=(AgentSLORow("alpha", "chat", 9, 10),),
        slos=(slo([(H, 9, 10)]),),
        incidents=(IncidentRow("inc-1", "warning", "slow", NOW, ("alpha",)),),
    )
    n2 = summary(
        "n2",
        agents=(AgentRow("alpha", ("2",), NOW - 1, 5, 0, 0.25),),
        agent_slos=(AgentSLORow("alpha", "chat", 5, 5),),
    )
    view = build_view([n1, n2], NOW, 30, 21)
    page = view.agents_page(q="ALP", limit=1, offset=0)
    assert page["total"] == 1
    [alpha] = page["items"]
    assert alpha == {
        "agent": "alpha",
        "versions": ["1", "2"],
        "nodes": ["n1", "n2"],
        "last_seen": rfc3339(NOW - 1),
        "calls": 15,
        "errors": 1,
        "cost_usd": 0.75,
    }
    assert view.agents_page(limit=1, offset=1)["items"][0]["agent"] == "beta"
    detail = view.agent("alpha")
    assert detail is not None
    assert [n["node"] for n in detail["nodes"]] == ["n1", "n2"]
    assert detail["spend_usd"] == 0.75 and detail["certification"] is None
    [chat] = detail["slos"]
    assert (chat["good"], chat["total"], chat["nodes"], chat["target"]) == (14, 15, 2, 0.99)
    assert [i["id"] for i in detail["incidents"]] == ["inc-1"]
    assert view.agent("nobody") is None


def test_version_skew() -> None:
    same = build_view([summary("n1"), summary("n2")], NOW, 30, 21)
    assert not same.version_skew
    other = NodeSummary(node="n3", version="0.2.0", published_at=NOW)
    assert build_view([summary("n1"), other], NOW, 30, 21).version_skew


def test_the_view_keeps_at_most_max_agents_the_most_recent() -> None:
    rows = tuple(AgentRow(f"a{i}", (), NOW - i, 1, 0, 0.0) for i in range(10))
    view = build_view([summary("n1", agents=rows)], NOW, 30, 21, max_agents=3)
    assert [a.agent for a in view.agents] == ["a0", "a1", "a2"] and view.agents_dropped == 7


# -- the gate: whatever another process wrote is refused whole, never a crash ------------


def raw(data: object) -> bytes:
    return MAGIC + zlib.compress(json.dumps(data).encode())


def good_data() -> dict[str, object]:
    return to_data(
        summary("n1", agents=(AgentRow("a", (), NOW, 1, 0, 0.0),), slos=(slo([(H, 1, 2)]),))
    )


def with_(path: list[object], value: object) -> bytes:
    data: object = good_data()
    node = data
    for key in path[:-1]:
        node = node[key]  # type: ignore[index]
    node[path[-1]] = value  # type: ignore[index]
    return MAGIC + zlib.compress(json.dumps(data).encode())


HOSTILE = {
    "empty": b"",
    "garbage": b"\x00\xff garbage",
    "magic only": MAGIC,
    "not zlib": MAGIC + b"not zlib at all",
    "zlib bomb": MAGIC + zlib.compress(b" " * (40 * 1024 * 1024)),
    "not json": MAGIC + zlib.compress(b"{nope"),
    "a list": raw([1, 2, 3]),
    "other format": with_(["v"], 2),
    "NaN cost": MAGIC + zlib.compress(json.dumps(good_data()).replace("0.0]", "NaN]").encode()),
    "huge count": with_(["slos", 0, 4, 0, 2], 10**18),
    "good above total": with_(["slos", 0, 4, 0, 1], 5),
    "negative calls": with_(["agents", 0, 3], -1),
    "string count": with_(["agents", 0, 3], "7"),
    "bool count": with_(["agents", 0, 3], True),
    "node a number": with_(["node"], 7),
    "empty node": with_(["node"], ""),
    "huge agent list": with_(["agents"], [["a", [], NOW, 0, 0, 0.0]] * (MAX_AGENTS + 1)),
    "long agent id": with_(["agents", 0, 0], "x" * 10_000),
    "wrong row size": with_(["agents", 0], ["a"]),
    "target one": with_(["slos", 0, 1], 1.0),
    "odd window": with_(["slos", 0, 2], 1234.5),
    "unknown status": with_(["slos", 0, 3], "fine"),
    "hours descending": with_(["slos", 0, 4], [[5, 0, 1], [4, 0, 1]]),
    "health": with_(["health"], "great"),
    "deep": MAGIC + zlib.compress(b"[" * 5000 + b"]" * 5000),
    "time in year 5000": with_(["at"], 10**11),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_summary_is_refused_with_a_reason(name: str) -> None:
    with pytest.raises(SummaryError) as refused:
        decode(HOSTILE[name])
    assert str(refused.value)


def test_the_unchanged_hostile_base_is_accepted() -> None:
    """The cases above differ from an accepted summary by the one hostile part only."""
    assert decode(raw(good_data())).node == "n1"


# -- the node's registry --------------------------------------------------------------


def span(agent: str | None, version: str | None = None, error: bool = False) -> AgentSpan:
    attrs: dict[str, object] = {}
    if agent is not None:
        attrs["agent.id"] = agent
    if version is not None:
        attrs["agent.version"] = version
    attrs["agent_sre.cost_usd"] = 0.5
    return AgentSpan(AgentSpanKind.LLM_INFERENCE, True, "x", b"t", b"s", 0, 1, error, attrs)  # type: ignore[arg-type]


def test_the_registry_counts_agents_bounded_and_keeps_recent_versions() -> None:
    evicted: list[object] = []
    registry = AgentRegistry(2, lambda name, key: evicted.append(key))
    registry.observe(span(None), NOW)
    registry.observe(span("b"), NOW)
    for i in range(12):
        registry.observe(span("a", version=str(i), error=i == 0), NOW + i)
    registry.observe(span("c"), NOW + 20)  # the least recently seen (b) goes
    rows = {row.agent: row for row in registry.rows(NOW + 20)}
    assert set(rows) == {"a", "c"} and evicted == ["b"]
    assert rows["a"].versions == tuple(str(i) for i in range(4, 12))
    assert (rows["a"].calls, rows["a"].errors, rows["a"].cost_usd) == (12, 1, 6.0)
    registry.observe(span("x" * 1000), NOW)
    assert max(len(r.agent) for r in registry.rows(NOW + 20)) == 256
