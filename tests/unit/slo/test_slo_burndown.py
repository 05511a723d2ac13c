"""The error budget's burn-down read from the bucket rings: starts full, falls where bad
events came, ends at the report's remaining budget, stays bounded in points."""

from __future__ import annotations

from agent_sre.slo.burndown import MAX_HOUR_POINTS
from agent_sre.slo.engine import SLOEngine
from agent_sre.tracing.conventions import AgentSpanKind as K
from tests.unit.slo.helpers import DAY, DAY0, HOUR, MINUTE, feed, slo, span

NOW = DAY0 + 40 * DAY + 30 * MINUTE


def test_an_slo_without_events_keeps_its_whole_budget() -> None:
    engine = SLOEngine([slo()])
    down = engine.burn_down("tasks", NOW)
    assert down.total == 0
    assert {remaining for _, remaining in down.points} == {1.0}
    assert down.points[0][0] < down.points[-1][0] == NOW


def test_the_line_falls_where_the_bad_events_came_and_ends_at_the_report() -> None:
    engine = SLOEngine([slo()])  # 99% over 30d
    feed(engine, NOW - 10 * DAY, good=1000)
    feed(engine, NOW - 2 * DAY, good=990, bad=10)  # 10 bad of 2000: half the budget
    feed(engine, NOW - 20 * MINUTE, bad=5)  # 5 more: 75% of ...
    down = engine.burn_down("tasks", NOW)
    report = engine.report("tasks", NOW)
    assert (down.good, down.total) == (report.overall.budget.good, report.overall.budget.total)
    assert down.points[-1] == (NOW, report.overall.budget.remaining_ratio)
    assert down.points[0][1] == 1.0
    times = [at for at, _ in down.points]
    assert times == sorted(times) and len(set(times)) == len(times)
    values = [remaining for _, remaining in down.points]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False)), "a burn-down never rises"
    allowed = 0.01 * 2005
    before_day = [r for at, r in down.points if at <= NOW - 2 * DAY - HOUR]
    after_day = [r for at, r in down.points if NOW - 2 * DAY + HOUR <= at <= NOW - HOUR]
    assert set(before_day) == {1.0}
    assert abs(after_day[0] - (1 - 10 / allowed)) < 1e-9
    assert abs(values[-1] - (1 - 15 / allowed)) < 1e-9
    assert values[-1] < after_day[-1]  # the last minutes' failures show in the fine points


def test_points_stay_bounded_for_a_long_window() -> None:
    engine = SLOEngine([slo(window="90d")])
    feed(engine, NOW, bad=1, good=1)
    down = engine.burn_down("tasks", NOW)
    assert len(down.points) <= MAX_HOUR_POINTS + 6 * 60 // 5 + 3


def test_a_window_within_the_minute_ring_reads_minutes() -> None:
    engine = SLOEngine([slo(window="1h", alerting=[])])
    feed(engine, NOW - 30 * MINUTE, good=9, bad=1)
    down = engine.burn_down("tasks", NOW)
    assert down.points[0] == ((int(NOW // MINUTE) - 59) * MINUTE, 1.0)
    assert down.points[-1][1] == 1 - 1 / (0.01 * 10)


def test_label_sets_are_summed() -> None:
    engine = SLOEngine([slo(labels=["agent.id"])])
    for agent, error in (("a", False), ("b", True), ("a", False), ("c", False)):
        engine.observe(span(K.AGENT_TASK, error=error, attrs={"agent.id": agent}), NOW)
    down = engine.burn_down("tasks", NOW + 1)
    assert (down.good, down.total) == (3, 4)
    assert down.to_dict()["bad"] == 1
