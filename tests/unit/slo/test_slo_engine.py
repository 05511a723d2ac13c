"""Label sets, reports, snapshots and reloads of the SLO engine."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from agent_sre.config import parse_config
from agent_sre.slo.alerts import Status
from agent_sre.slo.buckets import SnapshotError
from agent_sre.slo.compiled import OVERFLOW
from agent_sre.slo.engine import SLOEngine
from agent_sre.tracing.conventions import AgentSpanKind as K
from tests.unit.slo.helpers import DAY, DAY0, HOUR, MINUTE, feed, slo, span

if TYPE_CHECKING:
    from agent_sre.slo.spec import SLOSpec
    from agent_sre.tracing.view import AgentSpan

NOW = DAY0 + 10 * DAY


def task(agent: str, *, error: bool = False) -> AgentSpan:
    return span(K.AGENT_TASK, error=error, attrs={"agent.id": agent})


def counts(engine: SLOEngine, name: str, now: float) -> dict[tuple[str, ...], tuple[int, int]]:
    report = engine.report(name, now)
    return {tuple(i.labels.values()): (i.budget.good, i.budget.total) for i in report.instances}


def test_labels_split_an_slo_into_instances_with_their_own_status() -> None:
    engine = SLOEngine([slo(labels=["agent.id", "agent.span.kind"])])
    for _ in range(99):
        engine.observe(task("a"), NOW)
    engine.observe(task("b", error=True), NOW)
    assert counts(engine, "tasks", NOW) == {
        ("a", "AGENT_TASK"): (99, 99),
        ("b", "AGENT_TASK"): (0, 1),
    }
    (change,) = engine.evaluate(NOW + 1)
    assert change.labels == {"agent.id": "b", "agent.span.kind": "AGENT_TASK"}
    assert change.new is Status.EXHAUSTED
    report = engine.report("tasks", NOW + 1)
    assert report.status is Status.EXHAUSTED  # the worst instance
    assert (report.overall.budget.good, report.overall.budget.total) == (99, 100)
    assert report.overall.status is Status.EXHAUSTED  # 1 bad of 100 spends the whole 1%
    assert engine.status("tasks", {"agent.id": "a", "agent.span.kind": "AGENT_TASK"}) is (
        Status.HEALTHY
    )


def test_a_missing_label_attribute_is_an_empty_value() -> None:
    engine = SLOEngine([slo(labels=["agent.version"])])
    engine.observe(span(K.AGENT_TASK), NOW)
    engine.observe(span(K.AGENT_TASK, attrs={"agent.version": True}), NOW)
    assert counts(engine, "tasks", NOW) == {("",): (1, 1), ("true",): (1, 1)}


def test_label_sets_beyond_the_cap_are_counted_together_as_overflow() -> None:
    engine = SLOEngine([slo(labels=["agent.id"], max_label_sets=2)])
    for agent in ["a", "b", "c", "d", "a"]:
        engine.observe(task(agent), NOW)
    assert counts(engine, "tasks", NOW) == {
        ("a",): (2, 2),
        ("b",): (1, 1),
        (OVERFLOW,): (2, 2),
    }
    assert engine.report("tasks", NOW).overflow is True


def test_a_label_set_silent_for_a_whole_window_is_forgotten() -> None:
    engine = SLOEngine([slo(labels=["agent.id"], window="3d", max_label_sets=1)])
    engine.observe(task("old", error=True), NOW)
    assert [c.new for c in engine.evaluate(NOW + 1)] == [Status.EXHAUSTED]
    assert engine.evaluate(NOW + 3 * DAY - HOUR) == []
    assert list(counts(engine, "tasks", NOW + 3 * DAY - HOUR)) == [("old",)]
    (change,) = engine.evaluate(NOW + 3 * DAY)  # its return to HEALTHY is still signalled
    assert (change.labels, change.old, change.new) == (
        {"agent.id": "old"},
        Status.EXHAUSTED,
        Status.HEALTHY,
    )
    assert counts(engine, "tasks", NOW + 3 * DAY) == {}
    engine.observe(task("new"), NOW + 3 * DAY)  # the freed slot is not overflow
    assert list(counts(engine, "tasks", NOW + 3 * DAY)) == [("new",)]


def nothing_counted(engine: SLOEngine, name: str, now: float) -> bool:
    report = engine.report(name, now)
    return all(i.events_good == i.events_bad == 0 for i in report.instances)


def test_an_slo_without_labels_has_its_instance_at_zero_before_any_event() -> None:
    engine = SLOEngine([slo()])
    assert list(engine.event_counts()) == [("tasks", {}, 0, 0)]  # exported from the start
    report = engine.report("tasks", NOW)
    assert report.overflow is False
    assert [i.labels for i in report.instances] == [{}]
    assert nothing_counted(engine, "tasks", NOW)
    assert report.status is Status.HEALTHY
    assert report.overall.budget.remaining_ratio == 1.0
    assert report.overall.budget.exhaustion_in_s is None
    assert all(w.sli is None for w in report.overall.windows)


def test_reports_are_json_ready() -> None:
    engine = SLOEngine([slo(labels=["agent.id"]), slo("other")])
    engine.observe(task("a"), NOW)
    data = json.loads(json.dumps([r.to_dict() for r in engine.reports(NOW)]))
    first = data[0]
    assert first["name"] == "tasks"
    assert first["status"] == "HEALTHY"
    assert first["window"] == "30d"
    assert first["instances"][0]["labels"] == {"agent.id": "a"}
    assert first["overall"]["windows"][0] == {
        "window": "5m",
        "seconds": 300.0,
        "good": 1,
        "total": 1,
        "sli": 1.0,
        "error_ratio": 0.0,
        "burn_rate": 0.0,
    }
    assert [a["name"] for a in first["overall"]["alerts"]] == [
        "page-1h",
        "page-6h",
        "ticket-1d",
        "ticket-3d",
    ]
    assert data[1]["name"] == "other"


def test_event_counts_are_running_totals_for_the_exported_counter() -> None:
    engine = SLOEngine([slo(labels=["agent.id"])])
    engine.observe(task("a"), NOW)
    engine.observe(task("a", error=True), NOW + 40 * DAY)
    assert list(engine.event_counts()) == [("tasks", {"agent.id": "a"}, 1, 1)]


def test_spans_count_at_the_time_they_are_received_even_if_the_clock_steps_back() -> None:
    engine = SLOEngine([slo()])
    feed(engine, NOW, good=1)
    feed(engine, NOW - 10 * MINUTE, good=1)
    report = engine.report("tasks", NOW)
    assert report.overall.windows[0].total == 2


def test_from_config_takes_the_slos_of_the_configuration() -> None:
    config = parse_config("slos:\n  - {name: a, target: 0.9, sli: {kind: llm_success}}\n", "c.yaml")
    engine = SLOEngine.from_config(config)
    assert [s.name for s in engine.specs] == ["a"]
    assert "a" in engine
    with pytest.raises(KeyError):
        engine.report("b", NOW)


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ValueError, match="'a' is already the name of slos\\[0\\]"):
        SLOEngine([slo("a"), slo("a")])


# --- snapshot and restore --------------------------------------------------------------


def busy_engine(*specs: SLOSpec) -> SLOEngine:
    engine = SLOEngine(list(specs) or [slo(labels=["agent.id"]), slo("plain")])
    for minute in range(0, 3 * 24 * 60, 37):
        at = NOW - 3 * DAY + minute * MINUTE
        engine.observe(task("a", error=minute % 5 == 0), at)
        engine.observe(task("b"), at)
    return engine


def all_counts(engine: SLOEngine, now: float) -> list[dict[str, object]]:
    return [r.to_dict() for r in engine.reports(now)]


def test_a_snapshot_through_json_restores_the_same_reports() -> None:
    engine = busy_engine()
    data = json.loads(json.dumps(engine.snapshot()))
    fresh = SLOEngine([slo(labels=["agent.id"]), slo("plain")])
    assert fresh.restore(data, NOW) == ["tasks", "plain"]
    assert all_counts(fresh, NOW) == all_counts(engine, NOW)
    assert list(fresh.event_counts()) == list(engine.event_counts())


def test_a_restored_slo_keeps_its_status_so_recovery_is_signalled() -> None:
    """An SLO exhausted before a restart that recovers before the first evaluation after it
    still signals the recovery (the incident it opened resolves); a snapshot of an older
    release (no status) or a status this release does not know restores as HEALTHY."""
    engine = SLOEngine([slo()])
    feed(engine, NOW, good=0, bad=30)
    (change,) = engine.evaluate(NOW + 1)
    assert change.new is Status.EXHAUSTED
    data = json.loads(json.dumps(engine.snapshot()))
    later = SLOEngine([slo()])
    later.restore(data, NOW + 2)
    assert later.status("tasks") is Status.EXHAUSTED
    feed(later, NOW + 3, good=6000)
    (recovered,) = later.evaluate(NOW + 4)
    assert (recovered.old, recovered.new) == (Status.EXHAUSTED, Status.HEALTHY)
    for odd in (None, "ON_FIRE", 7):
        for item in data["slos"]["tasks"]["series"]:
            item.pop("status", None)
            if odd is not None:
                item["status"] = odd
        older = SLOEngine([slo()])
        assert older.restore(data, NOW + 2) == ["tasks"]
        assert older.status("tasks") is Status.HEALTHY


def test_a_restart_gap_is_no_events_and_old_buckets_leave_the_window() -> None:
    engine = SLOEngine([slo(window="3d")])
    feed(engine, NOW, good=5, bad=1)
    feed(engine, NOW + DAY, good=7)
    data = engine.snapshot()
    later = SLOEngine([slo(window="3d")])
    later.restore(data, NOW + 3 * DAY + HOUR)  # down for two days and an hour
    budget = later.report("tasks", NOW + 3 * DAY + HOUR).overall.budget
    assert (budget.good, budget.total) == (7, 7)
    gone = SLOEngine([slo(window="3d")])
    gone.restore(data, NOW + 5 * DAY)
    assert nothing_counted(gone, "tasks", NOW + 5 * DAY)


def test_restore_skips_slos_that_now_count_something_else() -> None:
    engine = busy_engine()
    changed = SLOEngine(
        [
            slo(labels=["agent.version"]),  # labels changed: skipped
            slo("plain", target=0.999, window="28d"),  # target and window changed: kept
            slo("new"),
        ]
    )
    assert changed.restore(engine.snapshot(), NOW) == ["plain"]
    assert changed.report("tasks", NOW).instances == ()
    kept = {w.window: (w.good, w.total) for w in changed.report("plain", NOW).overall.windows}
    before = {w.window: (w.good, w.total) for w in engine.report("plain", NOW).overall.windows}
    assert kept["28d"] == before["30d"] != (0, 0)
    assert {k: v for k, v in kept.items() if k != "28d"} == {
        k: v for k, v in before.items() if k != "30d"
    }


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"format": "something/else", "slos": {}},
        {"format": "agent-sre/slo-buckets/v1", "slos": []},
        {"format": "agent-sre/slo-buckets/v1", "slos": {"plain": {"counts": None}}},
    ],
)
def test_restore_refuses_what_is_not_a_snapshot(data: dict[str, object]) -> None:
    engine = SLOEngine([slo("plain")])
    if data.get("slos") == {"plain": {"counts": None}}:
        assert engine.restore(data, NOW) == []  # a stranger's counts: skipped, not an error
        return
    with pytest.raises(SnapshotError):
        engine.restore(data, NOW)


def test_a_corrupt_series_refuses_the_whole_snapshot() -> None:
    engine = busy_engine(slo("plain"))
    data = engine.snapshot()
    data["slos"]["plain"]["series"][0]["good"] = -1
    fresh = SLOEngine([slo("plain")])
    feed(fresh, NOW, good=3)
    with pytest.raises(SnapshotError, match="plain: good"):
        fresh.restore(data, NOW)
    assert fresh.report("plain", NOW).overall.budget.total == 3  # untouched


# --- reload ------------------------------------------------------------------------------


def test_a_reload_keeps_the_counts_of_unchanged_slos_only() -> None:
    old = busy_engine(slo("same"), slo("sli-changed"), slo("target-raised"), slo("removed"))
    old.evaluate(NOW)
    new = SLOEngine(
        [
            slo("same"),
            slo("sli-changed", sli={"kind": "llm_success"}),
            slo("target-raised", target=0.995),
            slo("added"),
        ]
    )
    assert new.carry_over(old, NOW) == ["same", "target-raised"]
    assert new.report("same", NOW).overall.windows == old.report("same", NOW).overall.windows
    assert nothing_counted(new, "sli-changed", NOW)
    assert nothing_counted(new, "added", NOW)
    raised = new.report("target-raised", NOW).overall.budget
    assert raised.total == old.report("target-raised", NOW).overall.budget.total


def test_a_reload_keeps_statuses_so_no_transition_is_signalled_twice() -> None:
    old = SLOEngine([slo()])
    feed(old, NOW, good=50, bad=50)
    assert [c.new for c in old.evaluate(NOW + 1)] == [Status.EXHAUSTED]
    new = SLOEngine([slo(description="reworded")])
    new.carry_over(old, NOW + 2)
    assert new.evaluate(NOW + 3) == []
    assert new.status("tasks") is Status.EXHAUSTED


def test_a_reload_that_changes_the_window_rebuilds_the_hour_buckets() -> None:
    old = SLOEngine([slo(window="30d")])
    feed(old, NOW - 20 * DAY, good=10)
    feed(old, NOW - DAY, good=3, bad=1)
    new = SLOEngine([slo(window="7d")])
    assert new.carry_over(old, NOW) == ["tasks"]
    budget = new.report("tasks", NOW).overall.budget
    assert (budget.good, budget.total) == (3, 4)


def test_a_reload_carries_the_trace_costs() -> None:
    spec = slo("cost", sli={"kind": "cost_per_task", "threshold": 1.0})
    old = SLOEngine([spec])
    old.observe(span(K.LLM_INFERENCE, attrs={"agent_sre.cost_usd": 2.0}), NOW)
    new = SLOEngine([spec])
    new.carry_over(old, NOW)
    new.observe(span(K.AGENT_TASK), NOW)
    budget = new.report("cost", NOW).overall.budget
    assert (budget.good, budget.total) == (0, 1)


def test_a_kept_reference_to_observe_still_counts_after_restore_and_carry_over() -> None:
    old = SLOEngine([slo(labels=["agent.id"]), slo("plain")])
    observe_old = old.observe
    engine = SLOEngine([slo(labels=["agent.id"]), slo("plain")])
    observe = engine.observe  # as the daemon's pipeline keeps it
    observe_old(task("a"), NOW)
    engine.restore(old.snapshot(), NOW)
    observe(task("a"), NOW)
    observe(task("b"), NOW)
    assert counts(engine, "tasks", NOW) == {("a",): (2, 2), ("b",): (1, 1)}
    assert engine.report("plain", NOW).overall.budget.total == 3
    newer = SLOEngine([slo(labels=["agent.id"]), slo("plain")])
    observe_newer = newer.observe
    newer.carry_over(engine, NOW)
    observe_newer(task("b"), NOW)
    assert counts(newer, "tasks", NOW) == {("a",): (2, 2), ("b",): (2, 2)}
    assert newer.report("plain", NOW).overall.budget.total == 4
