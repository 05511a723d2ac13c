"""A hand-computed incident driven minute by minute through the engine.

SLO: task_success, target 0.99 (budget 0.01) over 30d, default alerts, so the error-ratio
limits are page-1h 14.4 x 0.01, page-6h 6 x 0.01, ticket-1d 3 x 0.01, ticket-3d 1 x 0.01.

Traffic: 100,000 good tasks on day 0 (inside the 30d budget window, outside every alert
window); then on day 10 (T1), 100 tasks a minute: minutes 0-59 all good, minutes 60-69 all
bad, then all good again. Evaluated at the last second of every minute ``m`` of day 10.

Hand-computed moments (m = minutes after T1; all windows covered T1's traffic only):
- ticket-3d fires at m=60: 6h and 3d ratio 100/6100 = 0.0164 > 0.01 -> WARNING.
- ticket-1d fires at m=61: 200/6200 = 0.0323 > 0.03.
- page-6h fires at m=63: 6h 400/6400 = 0.0625 > 0.06 and 30m 400/3000 > 0.06 -> CRITICAL.
- page-1h fires at m=68: 1h 900/6000 = 0.15 > 0.144 (5m is 1.0), stops at m=74 when the
  5m window (minutes 70-74) holds no bad event.
- page-6h stops at m=98: the 30m window (69-98) holds 100 bad of 3000 = 0.033 <= 0.06.
- ticket-1d stops at m=186: the 2h window (67-186) holds 300 bad of 12000 = 0.025 <= 0.03.
- ticket-3d stops at m=426: the 6h window (67-426) holds 300 of 36000 = 0.0083 <= 0.01.
"""

from __future__ import annotations

import pytest

from agent_sre.slo.alerts import Status
from agent_sre.slo.engine import SLOEngine
from tests.unit.slo.helpers import DAY, DAY0, MINUTE, feed, slo

T1 = DAY0 + 10 * DAY


def minute_end(m: int) -> float:
    return T1 + (m + 1) * MINUTE - 1


Incident = tuple[SLOEngine, dict[int, list[str]], list[tuple[int, str, str]]]


def run_incident(until: int) -> Incident:
    engine = SLOEngine([slo()])
    feed(engine, DAY0 + 30, good=100_000)
    assert engine.evaluate(DAY0 + 59) == []
    firing_by_minute: dict[int, list[str]] = {}
    changes: list[tuple[int, str, str]] = []
    for m in range(until + 1):
        at = T1 + m * MINUTE + 1
        if 60 <= m <= 69:
            feed(engine, at, bad=100)
        else:
            feed(engine, at, good=100)
        for change in engine.evaluate(minute_end(m)):
            assert change.slo == "tasks"
            assert change.labels == {}
            assert change.at == minute_end(m)
            changes.append((m, change.old.value, change.new.value))
        report = engine.report("tasks", minute_end(m))
        firing_by_minute[m] = list(report.overall.firing)
        # the evaluation (signals) and the report (API) agree at every minute
        assert report.status is engine.status("tasks"), m
    return engine, firing_by_minute, changes


@pytest.fixture(scope="module")
def incident() -> Incident:
    return run_incident(430)


def first_and_last(firing: dict[int, list[str]], name: str) -> tuple[int, int]:
    minutes = [m for m, names in firing.items() if name in names]
    assert minutes == list(range(minutes[0], minutes[-1] + 1)), f"{name} flapped"
    return minutes[0], minutes[-1]


def test_status_transitions_happen_at_the_hand_computed_minutes(incident: Incident) -> None:
    _, _, changes = incident
    assert changes == [
        (60, "HEALTHY", "WARNING"),
        (63, "WARNING", "CRITICAL"),
        (98, "CRITICAL", "WARNING"),
        (426, "WARNING", "HEALTHY"),
    ]


@pytest.mark.parametrize(
    ("alert", "starts", "stops_after"),
    [
        ("ticket-3d", 60, 425),
        ("ticket-1d", 61, 185),
        ("page-6h", 63, 97),
        ("page-1h", 68, 73),
    ],
)
def test_each_alert_starts_and_stops_at_the_hand_computed_minute(
    incident: Incident, alert: str, starts: int, stops_after: int
) -> None:
    _, firing, _ = incident
    assert first_and_last(firing, alert) == (starts, stops_after)


def test_windows_budget_and_burn_rates_at_the_end_of_the_bad_minutes() -> None:
    engine, _, _ = run_incident(69)
    report = engine.report("tasks", minute_end(69))
    windows = {w.window: w for w in report.overall.windows}
    assert [w.window for w in report.overall.windows] == [
        "5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d",
    ]  # fmt: skip
    assert (windows["5m"].good, windows["5m"].total) == (0, 500)
    assert (windows["30m"].good, windows["30m"].total) == (2000, 3000)
    assert (windows["1h"].good, windows["1h"].total) == (5000, 6000)
    assert (windows["6h"].good, windows["6h"].total) == (6000, 7000)
    assert (windows["3d"].good, windows["3d"].total) == (6000, 7000)
    assert (windows["30d"].good, windows["30d"].total) == (106_000, 107_000)
    assert windows["5m"].sli == 0.0
    assert windows["1h"].sli == pytest.approx(5 / 6)
    assert windows["1h"].burn_rate == pytest.approx((1000 / 6000) / 0.01)
    assert windows["30m"].burn_rate == pytest.approx((1000 / 3000) / 0.01)

    budget = report.overall.budget
    assert (budget.good, budget.total, budget.bad) == (106_000, 107_000, 1000)
    assert budget.allowed_bad == pytest.approx(1070.0)
    assert budget.remaining_ratio == pytest.approx(1 - 1000 / 1070)
    assert budget.period_burn_rate == pytest.approx((1000 / 107_000) / 0.01)
    assert budget.current_burn_rate == pytest.approx(100.0)
    assert budget.forecast_burn_rate == pytest.approx((1000 / 6000) / 0.01)
    expected_s = (1 - 1000 / 1070) * 30 * DAY / ((1000 / 6000) / 0.01)
    assert budget.exhaustion_in_s == pytest.approx(expected_s)
    assert budget.exhaustion_at == pytest.approx(minute_end(69) + expected_s)

    alerts = {a.name: a for a in report.overall.alerts}
    assert alerts["page-1h"].factor == pytest.approx(14.4)
    assert alerts["page-6h"].factor == pytest.approx(6.0)
    assert alerts["ticket-1d"].factor == pytest.approx(3.0)
    assert alerts["ticket-3d"].factor == pytest.approx(1.0)
    assert alerts["page-1h"].long_burn_rate == pytest.approx(1000 / 6000 / 0.01)
    assert alerts["page-1h"].short_burn_rate == pytest.approx(100.0)
    assert report.status is Status.CRITICAL
    assert engine.status("tasks") is Status.CRITICAL


def test_the_budget_runs_out_and_the_status_says_exhausted() -> None:
    engine = SLOEngine([slo()])
    feed(engine, T1, good=991, bad=9)
    assert engine.evaluate(T1 + 30) == []
    assert engine.report("tasks", T1 + 30).overall.budget.remaining_ratio == pytest.approx(0.1)
    feed(engine, T1 + 35, bad=1)
    assert engine.evaluate(T1 + 40) == []  # 10 bad of 1001: a sliver of budget is left
    feed(engine, T1 + 45, bad=1)
    (change,) = engine.evaluate(T1 + 50)
    assert (change.old, change.new) == (Status.HEALTHY, Status.EXHAUSTED)
    assert change.firing == ("ticket-3d",)
    assert change.budget_remaining == pytest.approx(1 - 11 / (0.01 * 1002))
    assert engine.report("tasks", T1 + 50).overall.budget.exhaustion_in_s == 0.0


def test_spending_exactly_the_whole_budget_is_exhausted() -> None:
    engine = SLOEngine([slo()])
    feed(engine, T1, good=990, bad=10)
    (change,) = engine.evaluate(T1 + 30)
    assert change.new is Status.EXHAUSTED
    assert change.budget_remaining == 0.0


def test_hour_buckets_let_old_events_leave_the_budget_window_whole_hours_at_a_time() -> None:
    engine = SLOEngine([slo(window="1d", alerting=[])])
    feed(engine, DAY0 + 10 * MINUTE, good=90, bad=10)
    assert engine.report("tasks", DAY0 + DAY - 1).overall.budget.total == 100
    # At DAY0 + 1d the window is the current hour and the 23 before: hour 0 has left.
    assert engine.report("tasks", DAY0 + DAY).overall.budget.total == 0
