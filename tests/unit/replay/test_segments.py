"""The trace buffer's segment files: requests written once, dead bytes given back, live
requests of old segments copied forward, the bytes on disk what the store says."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_sre.replay.exchange import Exchange
from agent_sre.replay.traces import assemble, summarize
from agent_sre_daemon.replay.store import (
    FREE_SHARE,
    MIN_SEGMENT,
    Batch,
    Limits,
    TraceQuery,
    TraceStore,
)
from tests.support.disk import fill
from tests.unit.replay.test_store_and_traces import HOUR, put, request_of

BIG = "x" * 20_000
"""Enough for four requests to fill a segment of the smallest size."""


def store_at(tmp_path: Path, max_bytes: int = 10 * MIN_SEGMENT) -> TraceStore:
    return TraceStore(tmp_path / "replay.sqlite", Limits(HOUR, 24 * HOUR, max_bytes))


def on_disk(store: TraceStore) -> int:
    """What the files really hold: segments plus captured calls."""
    segments = sum(f.stat().st_size for f in store.segments_dir.glob("*.seg"))
    captured = store._db.execute("SELECT coalesce(sum(bytes), 0) FROM exchanges").fetchone()[0]
    return int(segments + captured)


def assert_consistent(store: TraceStore) -> None:
    """The store's running counts agree with its files and rows."""
    db = store._db
    per_segment = dict(db.execute("SELECT seg, sum(bytes) FROM batches GROUP BY seg"))
    assert {k: v for k, v in store._live.items() if v} == per_segment
    captured = db.execute("SELECT coalesce(sum(bytes), 0) FROM exchanges").fetchone()[0]
    assert store.live_bytes == sum(per_segment.values()) + captured
    assert store.size_bytes == on_disk(store)
    assert all(store._segment_path(seg).exists() for seg in per_segment)
    # every captured call is listed by exactly one trace's row, and every listed one exists
    listed = [int(c) for (calls,) in db.execute("SELECT calls FROM traces") for c in calls.split()]
    assert sorted(listed) == [
        seq for (seq,) in db.execute("SELECT seq FROM exchanges ORDER BY seq")
    ]


def span_names(store: TraceStore, trace: int) -> list[str]:
    trace_id = trace.to_bytes(16, "big").hex()
    with store.lock:
        whole = assemble(store.batches(trace_id), trace_id)
    return sorted(s.name for r in whole.resource_spans for ss in r.scope_spans for s in ss.spans)


def test_requests_go_to_segment_files_that_rotate_at_the_segment_size(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    for n in range(1, 13):
        put(store, request_of({"trace": n, "span": n, "name": f"s{n}", "attrs": {"p": BIG}}), n)
    segments = sorted(store.segments_dir.glob("*.seg"))
    assert len(segments) >= 3
    assert all(f.stat().st_size <= MIN_SEGMENT + 25_000 for f in segments)
    assert store.size_bytes == on_disk(store) == store.live_bytes
    # SQLite holds the index, not the bodies
    assert (tmp_path / "replay.sqlite").stat().st_size < 100_000
    assert span_names(store, 7) == ["s7"]


def test_a_trace_across_requests_and_writes_is_read_back_whole(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    put(store, request_of({"trace": 1, "span": 1, "name": "root"},
                          {"trace": 2, "span": 2, "name": "other"}), 1.0)  # fmt: skip
    put(store, request_of({"trace": 1, "span": 3, "name": "child", "parent": 1}), 2.0)
    assert span_names(store, 1) == ["child", "root"]
    with store.lock:
        (summary,) = [t for t in store.list_traces(TraceQuery()) if t["trace_id"].endswith("1")]
    assert summary["spans"] == 2 and summary["root"] == "root"
    store.close()


def test_dead_segments_are_deleted_and_disk_matches_the_count(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    for n in range(1, 13):
        put(store, request_of({"trace": n, "span": n, "attrs": {"p": BIG}}), 0.0)
    with store.lock:
        assert store.evict(now=HOUR + 1) == 12
    assert store.size_bytes == on_disk(store) == 0
    assert store.live_bytes == 0
    # and it goes on writing where it is
    put(store, request_of({"trace": 99, "span": 1, "name": "after"}), HOUR + 2)
    assert span_names(store, 99) == ["after"]
    assert store.size_bytes == on_disk(store)


def test_an_interesting_trace_in_an_old_segment_is_copied_forward(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    error = {"trace": 1, "span": 1, "name": "failed", "error": True}
    put(store, request_of(error, {"trace": 2, "span": 2, "attrs": {"p": BIG}}), 0.0)
    for n in range(3, 13):
        put(store, request_of({"trace": n, "span": n, "attrs": {"p": BIG}}), 0.0)
    first = min(store.segments_dir.glob("*.seg"))
    with store.lock:
        assert store.evict(now=HOUR + 1) == 11  # every ordinary trace; the error stays
    assert not first.exists()  # its segment went, mostly dead...
    assert span_names(store, 1) == ["failed"]  # ...after the request that trace needs moved
    assert_consistent(store)
    assert store.size_bytes == on_disk(store) < 3 * MIN_SEGMENT
    with store.lock:
        assert store.evict(now=24 * HOUR + 1) == 1
    assert store.size_bytes == on_disk(store) == 0


def test_evicting_thousands_of_traces_and_copying_their_segment_forward_takes_few_statements(
    tmp_path: Path,
) -> None:
    """The sqlite3 module gives the GIL up around each statement it runs, and the writer then
    waits up to the switch interval for a busy event loop (a file read the same): a statement
    a trace made an eviction of 10,000 traces take seconds under load, the store's lock held.
    Evictions and the copy forward now run a few statements each, whatever their size."""
    store = store_at(tmp_path, max_bytes=1 << 30)
    keep = {"trace": 1, "span": 1, "name": "failed", "error": True}  # interesting: kept a day
    with store.lock:
        batches, calls = [], []
        for n in range(2, 3002):
            request = request_of(*([keep] if n == 2 else []), {"trace": n, "span": n})
            summaries = summarize(request)
            batches.append(
                Batch(
                    request.SerializeToString(),
                    0.0,
                    summaries,
                    len(request.resource_spans[0].scope_spans[0].spans),
                )
            )
            call = Exchange(
                "r", "/r", "openai", "POST", f"/c{n}", trace_id=n.to_bytes(16, "big").hex(), at=0.0
            )
            calls.append((call, json.dumps(call.to_json())))
        store.write(batches, calls)
        store._rotate()  # the segment sealed: mostly dead after the eviction, so compacted
        statements: list[str] = []
        store._db.set_trace_callback(statements.append)
        assert store.evict(now=HOUR + 1) == 3000
        store._db.set_trace_callback(None)
    assert len(statements) < 60, statements[:5]  # one a trace, call and request: over 9,000
    assert span_names(store, 1) == ["failed"]  # its request copied forward, whole
    assert store.exchanges((2).to_bytes(16, "big").hex()) == []
    assert_consistent(store)
    assert store._db.execute("SELECT count(*) FROM batches").fetchone()[0] == 1


def test_a_trace_across_hundreds_of_requests_is_read_back_with_one_read_a_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading a trace back (the admin API, a cassette, a replay) read each of its requests
    with a read of its own, each giving the GIL up to a busy event loop: now one a segment."""
    store = store_at(tmp_path, max_bytes=1 << 30)
    for n in range(300):
        put(store, request_of({"trace": 7, "span": n + 1, "name": f"s{n}"},
                              {"trace": 8, "span": 1000 + n}), float(n))  # fmt: skip
    reads: list[int] = []
    opened = Path.open

    def counting_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        handle = opened(self, *args, **kwargs)
        read = handle.read

        def counted(*a: Any) -> Any:
            reads.append(1)
            return read(*a)

        handle.read = counted
        return handle

    monkeypatch.setattr(Path, "open", counting_open)
    segments = len(list(store.segments_dir.glob("*.seg")))
    assert span_names(store, 7) == sorted(f"s{n}" for n in range(300))
    assert 0 < len(reads) <= segments


def test_the_size_cap_bounds_the_bytes_on_disk(tmp_path: Path) -> None:
    store = store_at(tmp_path, max_bytes=4 * MIN_SEGMENT)
    for n in range(1, 41):
        put(store, request_of({"trace": n, "span": n, "attrs": {"p": BIG}}), float(n))
        with store.lock:
            store.evict(now=float(n))
        assert store.size_bytes == on_disk(store) <= 4 * MIN_SEGMENT
        assert_consistent(store)
    with store.lock:
        kept = {int(t["trace_id"], 16) for t in store.list_traces(TraceQuery(limit=100))}
    assert 40 in kept and 1 not in kept
    assert all(span_names(store, n) for n in kept)


def test_a_restart_reads_what_was_written_and_counts_the_same(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    for n in range(1, 7):
        put(store, request_of({"trace": n, "span": n, "name": f"s{n}", "attrs": {"p": BIG}}), 0.0)
    with store.lock:
        store.write([], [(Exchange("r", "/r", "openai", "POST", "/x", trace_id="ab" * 16),
                          "{}")])  # fmt: skip
    size, live = store.size_bytes, store.live_bytes
    store.close()
    again = store_at(tmp_path)
    assert (again.size_bytes, again.live_bytes) == (size, live) == (on_disk(again), live)
    assert_consistent(again)
    assert span_names(again, 4) == ["s4"]
    put(again, request_of({"trace": 7, "span": 7, "name": "s7"}), 1.0)
    assert span_names(again, 7) == ["s7"] and span_names(again, 1) == ["s1"]
    again.close()


def test_a_missing_segment_file_loses_its_requests_not_the_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = store_at(tmp_path)
    for n in range(1, 13):
        put(store, request_of({"trace": n, "span": n, "name": f"s{n}", "attrs": {"p": BIG}}), 0.0)
    store.close()
    min(store.segments_dir.glob("*.seg")).unlink()
    with caplog.at_level(logging.WARNING, "agent_sre.replay"):
        again = store_at(tmp_path)
    assert "missing" in caplog.text
    assert span_names(again, 1) == [] and span_names(again, 12) == ["s12"]
    assert again.size_bytes == on_disk(again)
    again.close()


@pytest.mark.parametrize(
    ("script", "aside", "which"),
    [
        (  # the first layout: request bodies in rows, no layout number
            "CREATE TABLE batches(seq INTEGER PRIMARY KEY, at REAL, bytes INTEGER, body BLOB)",
            "v1",
            "an older layout",
        ),
        (  # one a newer daemon wrote
            "CREATE TABLE batches(seq INTEGER PRIMARY KEY); PRAGMA user_version=9;",
            "v9",
            "a newer layout",
        ),
    ],
)
def test_a_file_of_a_layout_not_upgraded_in_place_is_moved_aside_not_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, script: str, aside: str, which: str
) -> None:
    db = sqlite3.connect(tmp_path / "replay.sqlite")
    db.executescript(script)
    db.close()
    with caplog.at_level(logging.WARNING, "agent_sre.replay"):
        store = store_at(tmp_path)
    assert (tmp_path / f"replay.sqlite.{aside}").exists() and which in caplog.text
    put(store, request_of({"trace": 1, "span": 1, "name": "new"}), 0.0)
    assert span_names(store, 1) == ["new"]
    store.close()


LAYOUT_2 = """
CREATE TABLE batches(
    seq INTEGER PRIMARY KEY, seg INTEGER NOT NULL, offset INTEGER NOT NULL,
    bytes INTEGER NOT NULL, at REAL NOT NULL, refs INTEGER NOT NULL);
CREATE INDEX batches_seg ON batches(seg);
CREATE TABLE traces(
    trace_id TEXT PRIMARY KEY, first_at REAL NOT NULL, last_at REAL NOT NULL,
    start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, spans INTEGER NOT NULL,
    errors INTEGER NOT NULL, agent TEXT NOT NULL, root TEXT NOT NULL, kinds INTEGER NOT NULL,
    interesting INTEGER NOT NULL, cost_usd REAL NOT NULL, bytes INTEGER NOT NULL,
    seqs TEXT NOT NULL);
CREATE INDEX traces_last ON traces(last_at);
CREATE TABLE exchanges(
    seq INTEGER PRIMARY KEY, trace_id TEXT NOT NULL, at REAL NOT NULL, bytes INTEGER NOT NULL,
    body TEXT NOT NULL);
CREATE INDEX exchanges_trace ON exchanges(trace_id);
PRAGMA user_version=2;
"""
"""The second layout (sessions 3-9): captured calls found by an index on their trace id."""


def test_a_file_of_the_second_layout_is_upgraded_in_place_calls_and_all(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def call(trace: str, path: str, at: float) -> tuple[str, float, int, str]:
        text = json.dumps(Exchange("r", "/r", "openai", "POST", path, trace_id=trace).to_json())
        return (trace, at, len(text), text)

    one, two = "01" * 16, "02" * 16
    calls = [call(two, "/b1", 1.0), call(one, "/a1", 2.0), call(two, "/b2", 3.0)]
    db = sqlite3.connect(tmp_path / "replay.sqlite")
    db.executescript(LAYOUT_2)
    rows = [(t, at, at, 0, 0, 0, 0, "", "", 0, 0, 0, size, "") for t, at, size, _ in calls[:2]]
    db.executemany("INSERT INTO traces VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.execute("INSERT INTO traces VALUES ('03' || hex(zeroblob(15)), 1, 1, 0, 0, 0, 0, '', '',"
               " 0, 0, 0, 0, '')")  # fmt: skip
    db.executemany("INSERT INTO exchanges(trace_id, at, bytes, body) VALUES (?, ?, ?, ?)", calls)
    db.commit()
    db.close()
    with caplog.at_level(logging.WARNING, "agent_sre.replay"):
        store = store_at(tmp_path)
    assert not list(tmp_path.glob("replay.sqlite.v*"))  # kept, not moved aside
    assert "upgraded to layout 3 (the captured calls of 2 traces" in caplog.text
    with store.lock:
        assert [e.path for e in store.exchanges(two)] == ["/b1", "/b2"]
        assert [e.path for e in store.exchanges(one)] == ["/a1"]
        assert store.trace_summary(two)["calls_captured"] == 2  # type: ignore[index]
        indexes = {r[0] for r in store._db.execute("SELECT name FROM sqlite_master")}
    assert "exchanges_trace" not in indexes
    assert store._db.execute("PRAGMA user_version").fetchone()[0] == 3
    assert_consistent(store)
    # new calls number after the upgraded ones, in the same lists
    later = Exchange("r", "/r", "openai", "POST", "/b3", trace_id=two, at=4.0)
    with store.lock:
        store.write([], [(later, json.dumps(later.to_json()))])
        assert [e.path for e in store.exchanges(two)] == ["/b1", "/b2", "/b3"]
        store.evict(now=10 * 24 * HOUR)  # all past retention: the calls go with their traces
        assert store.exchanges(two) == [] and store.exchanges(one) == []
    assert_consistent(store)
    assert store._db.execute("SELECT count(*) FROM exchanges").fetchone()[0] == 0
    store.close()


def test_a_request_cut_short_on_disk_is_left_out_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = store_at(tmp_path)
    put(store, request_of({"trace": 1, "span": 1, "name": "kept"}), 0.0)
    put(store, request_of({"trace": 1, "span": 2, "name": "lost", "attrs": {"p": BIG}}), 1.0)
    store.close()
    (segment,) = store.segments_dir.glob("*.seg")
    with segment.open("r+b") as file:  # the power went before the last bytes were synced
        file.truncate(segment.stat().st_size - 100)
    again = store_at(tmp_path)
    with caplog.at_level(logging.WARNING, "agent_sre.replay"):
        assert span_names(again, 1) == ["kept"]
    assert "cut short" in caplog.text
    again.close()


def test_a_damaged_index_is_moved_aside_and_the_store_starts_empty(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    put(store, request_of({"trace": 1, "span": 1, "name": "old"}), 0.0)
    store.close()
    (tmp_path / "replay.sqlite").write_bytes(b"this is not a database" * 100)
    for side in ("replay.sqlite-wal", "replay.sqlite-shm"):
        (tmp_path / side).unlink(missing_ok=True)
    again = store_at(tmp_path)
    assert list(tmp_path.glob("replay.sqlite.corrupt-*"))
    assert span_names(again, 1) == []
    put(again, request_of({"trace": 2, "span": 2, "name": "new"}), 1.0)
    assert span_names(again, 2) == ["new"]
    with again.lock:
        again.evict(now=2.0)
    assert again.size_bytes == on_disk(again) == again.live_bytes  # the old bytes reclaimed
    again.close()


ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(1, 12), st.integers(0, 30_000), st.booleans()),
        # a captured call of trace a, b bytes of body, with a request of its trace in the
        # same write or alone
        st.tuples(st.just("call"), st.integers(1, 12), st.integers(0, 30_000), st.booleans()),
        st.tuples(st.just("evict"), st.integers(0, 3), st.just(0), st.just(False)),
        st.tuples(st.just("cap"), st.integers(2, 8), st.just(0), st.just(False)),
    ),
    max_size=40,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops)
def test_any_mix_of_writes_and_evictions_keeps_every_kept_trace_whole(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, int, int, bool]]
) -> None:
    store = store_at(tmp_path_factory.mktemp("store"))
    now, span = 0.0, 0
    sent: dict[int, list[str]] = {}
    called: dict[int, list[str]] = {}
    kept: list[int] = []
    for op, a, b, flag in steps:
        if op == "put":
            span += 1
            spec = {"trace": a, "span": span, "name": f"s{span}", "error": flag,
                    "attrs": {"p": "x" * b}}  # fmt: skip
            put(store, request_of(spec), now)
            sent.setdefault(a, []).append(f"s{span}")
        elif op == "call":
            span += 1
            trace_id = a.to_bytes(16, "big").hex()
            call = Exchange("r", "/r", "openai", "POST", f"/c{span}", request=b"q" * b,
                            trace_id=trace_id, at=now)  # fmt: skip
            batches = []
            if flag:
                request = request_of({"trace": a, "span": span, "name": f"s{span}"})
                summaries = summarize(request)
                batches.append(Batch(request.SerializeToString(), now, summaries, 1))
                sent.setdefault(a, []).append(f"s{span}")
            with store.lock:
                store.write(batches, [(call, json.dumps(call.to_json()))])
            called.setdefault(a, []).append(f"/c{span}")
        elif op == "evict":
            now += a * HOUR / 2
            with store.lock:
                store.evict(now)
        else:
            store.limits = Limits(HOUR, 24 * HOUR, a * MIN_SEGMENT)
            with store.lock:
                store.evict(now)
            assert store.size_bytes <= store.limits.max_bytes
        assert_consistent(store)
        with store.lock:
            kept = [int(t["trace_id"], 16) for t in store.list_traces(TraceQuery(limit=100))]
        sent = {trace: names for trace, names in sent.items() if trace in kept}  # evicted: gone
        with store.lock:
            for trace in list(called):
                trace_id = trace.to_bytes(16, "big").hex()
                paths = [e.path for e in store.exchanges(trace_id)]
                if store.trace_summary(trace_id) is None:  # evicted with its calls
                    assert paths == []
                    del called[trace]
                else:  # all of them, in the order made
                    assert paths == called[trace]
                    assert store.trace_summary(trace_id)["calls_captured"] == len(paths)  # type: ignore[index]
    for trace in kept:
        assert span_names(store, trace) == sorted(sent.get(trace, []))  # whole, or gone
    store.close()


def test_a_full_disk_fails_writes_loses_nothing_indexed_and_the_store_recovers(
    small_disk: Path,
) -> None:
    store = store_at(small_disk, max_bytes=2 * 1024 * 1024)
    put(store, request_of({"trace": 1, "span": 1, "name": "before"}), 0.0)
    filler = fill(small_disk)
    failed = 0
    for n in range(2, 40):  # more than the page cache and the tmpfs hold
        try:
            put(store, request_of({"trace": n, "span": n, "attrs": {"p": BIG}}), 1.0)
        except (OSError, sqlite3.Error):
            failed += 1
    assert failed
    filler.unlink()  # the disk recovers
    put(store, request_of({"trace": 99, "span": 99, "name": "after"}), 2.0)
    assert span_names(store, 1) == ["before"] and span_names(store, 99) == ["after"]
    with store.lock:
        store.evict(now=3.0)
        kept = {int(t["trace_id"], 16) for t in store.list_traces(TraceQuery(limit=100))}
    for trace in kept - {1, 99}:  # what was indexed while the disk filled is whole
        assert span_names(store, trace) == ["work"], trace
    assert_consistent(store)
    store.close()


def test_a_file_system_short_of_room_shrinks_the_buffer_below_its_cap(
    small_disk: Path,
) -> None:
    store = store_at(small_disk, max_bytes=3 * 1024 * 1024)  # more than the disk can spare
    for n in range(1, 61):
        put(store, request_of({"trace": n, "span": n, "attrs": {"p": BIG}}), float(n))
    filler = fill(small_disk, leave=100_000)  # the queue, say, takes nearly all the rest
    reserve = int(shutil.disk_usage(small_disk).total * FREE_SHARE)
    with store.lock:
        assert store.evict(now=61.0) > 0  # under its own cap, but the disk is short
    assert shutil.disk_usage(small_disk).free >= reserve * 0.9
    with store.lock:
        kept = {int(t["trace_id"], 16) for t in store.list_traces(TraceQuery(limit=100))}
    assert 60 in kept and 1 not in kept  # the oldest went
    assert all(span_names(store, n) for n in kept)
    assert_consistent(store)
    filler.unlink()
    store.close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    order=st.permutations(["request", "call", "other call"]),
    together=st.lists(st.booleans(), min_size=2, max_size=2),
)
def test_a_call_and_its_traces_requests_count_the_same_in_one_write_or_apart(
    tmp_path_factory: pytest.TempPathFactory, order: list[str], together: list[bool]
) -> None:
    """A call whose trace has a request in the same write adds its bytes to that trace's row;
    one alone gets a row of its own: either way a trace's summary and the store's counts are
    what they are when each item is written on its own."""
    trace_id = (1).to_bytes(16, "big").hex()
    request = request_of({"trace": 1, "span": 1, "name": "root", "attrs": {"p": "x" * 300}})
    summaries = summarize(request)
    body = request.SerializeToString()

    def items() -> dict[str, tuple[list[Batch], list[tuple[Exchange, str]]]]:
        call = Exchange("r", "/r", "openai", "POST", "/x", trace_id=trace_id, at=5.0)
        other = Exchange("r", "/r", "openai", "POST", "/y", trace_id="cd" * 16, at=6.0)
        batch = Batch(body, 4.0, summarize(request), sum(s.spans for s in summaries))
        return {
            "request": ([batch], []),
            "call": ([], [(call, json.dumps(call.to_json()))]),
            "other call": ([], [(other, json.dumps(other.to_json()))]),
        }

    def written(groups: list[list[str]]) -> tuple[Any, ...]:
        store = store_at(tmp_path_factory.mktemp("store"))
        made = items()
        with store.lock:
            for group in groups:
                store.write(
                    [b for name in group for b in made[name][0]],
                    [e for name in group for e in made[name][1]],
                )
            seen = (store.trace_summary(trace_id), store.trace_summary("cd" * 16))
        assert_consistent(store)
        out = (*seen, store.size_bytes, store.live_bytes)
        store.close()
        return out

    apart = written([[name] for name in order])
    groups: list[list[str]] = [[order[0]]]
    for name, join in zip(order[1:], together, strict=True):
        if join:
            groups[-1].append(name)
        else:
            groups.append([name])
    assert written(groups) == apart
