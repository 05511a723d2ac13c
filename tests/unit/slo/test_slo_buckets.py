from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_sre.slo.buckets import FINE_SLOTS, BucketSeries, SnapshotError, window_buckets

START = 28_331_000  # a minute index (unix seconds // 60) on an hour boundary
HOURS = 72


def add(series: BucketSeries, minute: int, good: int, total: int) -> None:
    series.advance(minute)
    series.good += good
    series.total += total


def reference(events: list[tuple[int, int, int]], now: int, fine: bool, n: int) -> tuple[int, int]:
    """The window by definition: the ``n`` buckets ending with the one holding ``now``."""
    if fine:
        inside = [e for e in events if now - n < e[0] <= now]
    else:
        inside = [e for e in events if now // 60 - n < e[0] // 60 <= now // 60]
    return sum(e[1] for e in inside), sum(e[2] for e in inside)


def test_windows_resolve_to_minutes_up_to_6h_then_to_hours() -> None:
    assert window_buckets(300, HOURS) == (True, 5)
    assert window_buckets(6 * 3600, HOURS) == (True, 360)
    assert window_buckets(24 * 3600, HOURS) == (False, 24)
    assert window_buckets(72 * 3600, HOURS) == (False, 72)
    with pytest.raises(ValueError):
        window_buckets(73 * 3600, HOURS)
    with pytest.raises(ValueError):
        window_buckets(7 * 3600 + 60, HOURS)


def test_a_five_minute_window_sums_exactly_the_last_five_minute_buckets() -> None:
    series = BucketSeries(START, HOURS)
    for m in range(10):
        add(series, START + m, good=m, total=10 * m)
    assert series.window(True, 5) == (5 + 6 + 7 + 8 + 9, 10 * (5 + 6 + 7 + 8 + 9))
    assert series.window(True, 1) == (9, 90)
    series.advance(START + 12)
    assert series.window(True, 5) == (8 + 9, 170)


def test_minute_windows_forget_everything_after_six_idle_hours_but_hours_remember() -> None:
    series = BucketSeries(START, HOURS)
    add(series, START, good=3, total=4)
    series.advance(START + FINE_SLOTS - 1)
    assert series.window(True, FINE_SLOTS) == (3, 4)
    series.advance(START + FINE_SLOTS)
    assert series.window(True, FINE_SLOTS) == (0, 0)
    assert series.window(False, 24) == (3, 4)
    series.advance(START + 24 * 60)
    assert series.window(False, 24) == (0, 0)
    assert series.window(False, 25) == (3, 4)
    assert (series.good, series.total) == (3, 4)  # the running totals only grow


def test_a_clock_going_back_books_into_the_current_bucket() -> None:
    series = BucketSeries(START + 10, HOURS)
    add(series, START + 5, good=1, total=1)
    assert series.minute == START + 10
    assert series.window(True, 1) == (1, 1)


def test_memory_does_not_grow_with_traffic() -> None:
    series = BucketSeries(START, HOURS)
    before = [len(getattr(series, slot)) for slot in ("_fine_good", "_hour_total")]
    for m in range(0, 5000, 7):
        add(series, START + m, good=1000, total=1001)
    after = [len(getattr(series, slot)) for slot in ("_fine_good", "_hour_total")]
    assert before == after == [FINE_SLOTS, HOURS]


events_strategy = st.lists(
    st.tuples(
        st.integers(0, 5 * 24 * 60),  # minute offset within five days
        st.integers(0, 50),
        st.integers(0, 50),
    ),
    max_size=60,
).map(lambda es: sorted((START + m, min(g, t), t) for m, g, t in es))


@settings(max_examples=150, deadline=None)
@given(events=events_strategy, extra=st.integers(0, 3 * 24 * 60))
def test_every_window_equals_the_sum_of_its_buckets(
    events: list[tuple[int, int, int]], extra: int
) -> None:
    series = BucketSeries(START, HOURS)
    for minute, good, total in events:
        add(series, minute, good, total)
    now = (events[-1][0] if events else START) + extra
    series.advance(now)
    for fine, n in [(True, 1), (True, 5), (True, 30), (True, 60), (True, 360)] + [
        (False, 1),
        (False, 24),
        (False, 72),
    ]:
        assert series.window(fine, n) == reference(events, now, fine, n), (fine, n)


@settings(max_examples=100, deadline=None)
@given(events=events_strategy, gap=st.integers(0, 4 * 24 * 60))
def test_saved_data_reads_back_to_the_same_windows(
    events: list[tuple[int, int, int]], gap: int
) -> None:
    series = BucketSeries(START, HOURS)
    for minute, good, total in events:
        add(series, minute, good, total)
    data = json.loads(json.dumps(series.to_data()))
    now = series.minute + gap
    restored = BucketSeries.from_data(data, now, HOURS)
    series.advance(now)
    if now - data["minute"] >= HOURS * 60:
        assert restored is None
        return
    assert restored is not None
    assert (restored.good, restored.total) == (series.good, series.total)
    for fine, n in [(True, 5), (True, 360), (False, 1), (False, 24), (False, 72)]:
        assert restored.window(fine, n) == series.window(fine, n)


def test_saved_data_keeps_only_non_empty_buckets() -> None:
    series = BucketSeries(START, HOURS)
    add(series, START + 2, good=1, total=2)
    add(series, START + 90, good=3, total=3)
    data = series.to_data()
    assert data["minutes"] == [[START + 2, 1, 2], [START + 90, 3, 3]]
    assert data["hours"] == [[START // 60, 1, 2], [START // 60 + 1, 3, 3]]
    assert (data["good"], data["total"]) == (4, 5)


def test_restoring_into_a_shorter_window_drops_the_older_hours() -> None:
    series = BucketSeries(START, HOURS)
    add(series, START, good=1, total=1)
    add(series, START + 30 * 60, good=2, total=2)
    restored = BucketSeries.from_data(series.to_data(), START + 30 * 60, 24)
    assert restored is not None
    assert restored.window(False, 24) == (2, 2)


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"minute": START, "good": 2, "total": 1},
        {"minute": "x", "good": 0, "total": 0},
        {"minute": START, "good": 1, "total": 1, "minutes": [[START, 1]]},
        {"minute": START, "good": 1, "total": 1, "minutes": [[START, 2, 1]]},
        {"minute": START, "good": 1, "total": 1, "hours": [[START // 60, 5, 5]]},
        {"minute": START, "good": 1, "total": 1, "minutes": "no"},
    ],
)
def test_malformed_saved_data_is_refused(data: object) -> None:
    with pytest.raises(SnapshotError):
        BucketSeries.from_data(data, START, HOURS)
