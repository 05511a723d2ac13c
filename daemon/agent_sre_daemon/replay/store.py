"""The trace buffer's store: accepted requests in segment files, an index in SQLite.

A request is stored once, as it was accepted: its bytes are appended to the current segment
file (``<store>.segments/NNNNNNNN.seg``; written once, never rewritten: only an all-dead
current segment is emptied) and a ``batches`` row says where. Each trace has one index row
(its summary and the list of requests that carry it); a trace is read back by filtering its
spans out of those requests.
Captured calls are rows of their own, which their trace's row lists (no index on the trace
id: an index of random keys dirtied a page of it a call, the writer's largest cost).

Eviction drops whole traces, oldest first, ordinary ones before interesting ones; a request
lives while a kept trace needs it. A segment is deleted when none of its requests lives; one
that is mostly dead, or in the way of the size cap, has its live requests copied
forward into the current segment first (a request keeps its number, so the trace rows stay
right). Bytes on disk are the segment files plus the captured calls.

Every method is blocking and runs on the buffer's writer thread or in ``asyncio.to_thread``;
the caller holds :attr:`TraceStore.lock`.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import shutil
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from agent_sre.replay.exchange import Exchange
from agent_sre.replay.traces import KINDS, kind_names, reasons
from agent_sre_daemon.clock import SYSTEM_CLOCK
from agent_sre_daemon.stores.rows import insert_rows
from agent_sre_daemon.stores.sqlite import open_database

if TYPE_CHECKING:
    import sqlite3
    from pathlib import Path

    from agent_sre.replay.traces import TraceSummary
    from agent_sre_daemon.clock import Clock

log = logging.getLogger("agent_sre.replay")

FORMAT = 3
"""``PRAGMA user_version`` of this layout (1: request bodies in SQLite rows; 2: captured calls
found by an index on their trace id, upgraded in place)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches(
    seq INTEGER PRIMARY KEY, seg INTEGER NOT NULL, offset INTEGER NOT NULL,
    bytes INTEGER NOT NULL, at REAL NOT NULL, refs INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS batches_seg ON batches(seg);
CREATE TABLE IF NOT EXISTS traces(
    trace_id TEXT PRIMARY KEY, first_at REAL NOT NULL, last_at REAL NOT NULL,
    start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, spans INTEGER NOT NULL,
    errors INTEGER NOT NULL, agent TEXT NOT NULL, root TEXT NOT NULL, kinds INTEGER NOT NULL,
    interesting INTEGER NOT NULL, cost_usd REAL NOT NULL, bytes INTEGER NOT NULL,
    seqs TEXT NOT NULL, calls TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS traces_last ON traces(last_at);
CREATE TABLE IF NOT EXISTS exchanges(
    seq INTEGER PRIMARY KEY, trace_id TEXT NOT NULL, at REAL NOT NULL, bytes INTEGER NOT NULL,
    body TEXT NOT NULL);
"""

_FROM_2 = """
ALTER TABLE traces ADD COLUMN calls TEXT NOT NULL DEFAULT '';
UPDATE traces SET calls = (
    SELECT group_concat(seq, ' ') FROM (
        SELECT seq FROM exchanges e WHERE e.trace_id = traces.trace_id ORDER BY seq))
WHERE EXISTS (SELECT 1 FROM exchanges e WHERE e.trace_id = traces.trace_id);
DROP INDEX IF EXISTS exchanges_trace;
"""
"""Layout 2 to 3: each trace's row lists its captured calls; their index goes."""

_UPSERT_HEAD = """
INSERT INTO traces(trace_id, first_at, last_at, start_ns, end_ns, spans, errors, agent, root,
                   kinds, interesting, cost_usd, bytes, seqs, calls)"""
_UPSERT_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_UPSERT_TAIL = """
ON CONFLICT(trace_id) DO UPDATE SET
    last_at = max(last_at, excluded.last_at),
    start_ns = CASE WHEN spans = 0 OR excluded.start_ns < start_ns
                    THEN excluded.start_ns ELSE start_ns END,
    root = CASE WHEN spans = 0 OR excluded.start_ns < start_ns
                THEN excluded.root ELSE root END,
    end_ns = max(end_ns, excluded.end_ns),
    spans = spans + excluded.spans,
    errors = errors + excluded.errors,
    agent = CASE WHEN agent = '' THEN excluded.agent ELSE agent END,
    kinds = kinds | excluded.kinds,
    interesting = interesting | excluded.interesting,
    cost_usd = cost_usd + excluded.cost_usd,
    bytes = bytes + excluded.bytes,
    seqs = CASE WHEN seqs = '' THEN excluded.seqs ELSE seqs || ' ' || excluded.seqs END,
    calls = CASE WHEN calls = '' THEN excluded.calls WHEN excluded.calls = '' THEN calls
                 ELSE calls || ' ' || excluded.calls END
"""

_UPSERT_CALLS_ROW = "(?, ?, ?, 0, 0, 0, 0, '', '', 0, 0, 0, ?, '', ?)"
_UPSERT_CALLS_TAIL = """
ON CONFLICT(trace_id) DO UPDATE SET
    bytes = bytes + excluded.bytes,
    calls = CASE WHEN calls = '' THEN excluded.calls ELSE calls || ' ' || excluded.calls END
"""
"""Captured calls whose trace has no request in the same write (with :data:`_UPSERT_HEAD`):
the trace's row (one of its own until its spans come) adds their bytes and lists them."""

_SUMMARY = (
    "SELECT trace_id, start_ns, end_ns, spans, errors, agent, root, kinds, interesting,"
    " cost_usd, bytes, calls FROM traces"
)

FREE_SHARE = 0.10
FREE_MAX = 1024 * 1024 * 1024
"""The buffer shrinks below ``max_size_mib`` rather than leave its file system less free
room than a tenth of it (at most 1 GiB)."""

_IN_CHUNK = 500
"""Values in one ``IN (...)`` list (within the 999 parameters of any SQLite)."""

SEGMENT_BUFFER = 1024 * 1024
"""Bytes of requests gathered before they go to the segment file (each write's end flushes
them, before the rows that point at them are committed)."""

MIN_SEGMENT = 64 * 1024
MAX_SEGMENT = 16 * 1024 * 1024
"""A segment is sealed at a sixteenth of the size cap, within these bounds."""


class _OlderLayoutError(Exception):
    """The index file is of a layout that is not upgraded in place (the first, or a newer
    one)."""

    def __init__(self, version: int) -> None:
        super().__init__(version)
        self.version = version


def _setup(db: sqlite3.Connection) -> None:
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    tables = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()
    if version == 2 and tables[0]:
        db.execute("BEGIN")
        try:
            for statement in _FROM_2.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version={FORMAT}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        listed = db.execute("SELECT count(*) FROM traces WHERE calls != ''").fetchone()[0]
        log.warning(
            "trace buffer: upgraded to layout %d (the captured calls of %d traces listed in"
            " their rows)", FORMAT, listed,
        )  # fmt: skip
    elif version != FORMAT and tables[0]:
        db.close()
        raise _OlderLayoutError(version or 1)  # the first layout did not number itself
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
    db.execute(f"PRAGMA user_version={FORMAT}")
    db.execute("SELECT count(*) FROM batches").fetchone()  # a damaged file says so here


@dataclass(frozen=True)
class Limits:
    """The store's caps (from ``replay:``)."""

    retention: float
    keep_interesting_for: float
    max_bytes: int

    @property
    def segment_bytes(self) -> int:
        return max(MIN_SEGMENT, min(MAX_SEGMENT, self.max_bytes // 16))


@dataclass(frozen=True)
class TraceQuery:
    agent: str = ""
    since: float | None = None
    until: float | None = None
    errors_only: bool = False
    kind: str = ""
    limit: int = 100


@dataclass
class Batch:
    """One accepted request to store: its bytes, when, and its traces' summaries."""

    body: bytes
    at: float
    summaries: list[TraceSummary]
    spans: int


@dataclass
class _Merged:
    """A trace's summaries over the requests of one write, and those requests."""

    summary: TraceSummary
    first_at: float
    last_at: float
    bytes: float
    seqs: list[int]
    calls: list[int]
    """The captured calls of the trace in the write."""

    def add(self, s: TraceSummary, at: float, nbytes: float, seq: int) -> None:
        """Adds the trace's summary of another request (into the first one: the summaries
        are the writer's, used once)."""
        m = self.summary
        if s.start_ns < m.start_ns:
            m.start_ns, m.root = s.start_ns, s.root
        m.end_ns = max(m.end_ns, s.end_ns)
        m.spans += s.spans
        m.errors += s.errors
        m.agent = m.agent or s.agent
        m.kinds |= s.kinds
        m.interesting |= s.interesting
        m.cost_usd += s.cost_usd
        self.first_at = min(self.first_at, at)
        self.last_at = max(self.last_at, at)
        self.bytes += nbytes
        self.seqs.append(seq)

    def row(self) -> tuple[Any, ...]:
        s = self.summary
        return (
            s.trace_id, self.first_at, self.last_at, s.start_ns, s.end_ns, s.spans, s.errors,
            s.agent, s.root, s.kinds, s.interesting, s.cost_usd, int(self.bytes),
            " ".join(map(str, self.seqs)), " ".join(map(str, self.calls)),
        )  # fmt: skip


class TraceStore:
    """SQLite index ``path`` and the segment files beside it.

    Attributes:
        size_bytes: bytes on disk (segment files and captured calls), what the cap bounds.
        live_bytes: of those, the bytes a kept trace still needs.
    """

    def __init__(self, path: Path, limits: Limits, clock: Clock = SYSTEM_CLOCK) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.limits = limits
        self.lock = threading.Lock()
        self.segments_dir = path.with_name(path.name.removesuffix(".sqlite") + ".segments")
        self.segments_dir.mkdir(exist_ok=True)
        self._db = self._open(path, clock)
        self.evicted_traces = 0
        self.evicted_interesting = 0
        """Traces kept because they mattered that the size cap forced out (ever)."""
        self._next_seq = int(self._one("SELECT coalesce(max(seq), 0) + 1 FROM batches"))
        self._next_call = int(self._one("SELECT coalesce(max(seq), 0) + 1 FROM exchanges"))
        self._sizes = {
            int(f.stem): f.stat().st_size
            for f in self.segments_dir.glob("*.seg")
            if f.stem.isdigit()
        }
        self._live: dict[int, int] = {
            int(seg): int(n)
            for seg, n in self._db.execute("SELECT seg, sum(bytes) FROM batches GROUP BY seg")
        }
        """Bytes of each segment that a kept trace needs."""
        for seg in set(self._live) - set(self._sizes):
            log.warning(
                "trace buffer: %s is missing; its requests are gone", self._segment_path(seg)
            )
            self._db.execute("DELETE FROM batches WHERE seg = ?", (seg,))
            del self._live[seg]
        # a start opens a new segment: what the last run left (a crash's unindexed tail, or
        # files a damaged index described) is sealed and reclaimed as dead at the next pass
        self._seg = max(self._sizes, default=0) + 1
        self._out: BinaryIO | None = self._open_segment(self._seg)
        self._sizes[self._seg] = 0
        captured = int(self._one("SELECT coalesce(sum(bytes), 0) FROM exchanges"))
        self.size_bytes = sum(self._sizes.values()) + captured
        self.live_bytes = sum(self._live.values()) + captured

    def _open(self, path: Path, clock: Clock) -> sqlite3.Connection:
        """Opens the index: a damaged one is moved aside (``.corrupt-<time>``) and the store
        starts empty (the segment files it described are reclaimed as dead); one of the
        first layout (request bodies in rows), or of a newer one, is moved aside as
        ``.v<layout>``; the second is upgraded in place."""
        lost = "recent traces and captured calls"
        try:
            return open_database(path, _setup, clock=clock, lost=lost)
        except _OlderLayoutError as exc:
            aside = path.with_name(f"{path.name}.v{exc.version}")
            path.replace(aside)
            for suffix in ("-wal", "-shm"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
            which = "an older" if exc.version < FORMAT else "a newer"
            log.warning("trace buffer: a file of %s layout moved aside to %s", which, aside)
            return open_database(path, _setup, clock=clock, lost=lost)

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self._db.execute(sql, params).fetchone()[0]

    def _segment_path(self, seg: int) -> Path:
        return self.segments_dir / f"{seg:08d}.seg"

    def _open_segment(self, seg: int) -> BinaryIO:
        # Each write system call gives the GIL up, and the writer then waits up to the
        # switch interval (5 ms) for a busy event loop to hand it back: with the default
        # 8 KiB buffer that was once every few requests (most of the writer's waits).
        return self._segment_path(seg).open("ab", buffering=SEGMENT_BUFFER)

    def _rotate(self) -> None:
        """Seals the current segment and starts the next (a failure to create it leaves
        none open: the next append tries again)."""
        if self._out is not None:
            self._out.close()
            self._out = None
        self._seg += 1
        self._sizes[self._seg] = 0
        self._out = self._open_segment(self._seg)

    def _abandon_segment(self) -> None:
        """After a failed write the current segment's end is not known any more (a full
        disk may have kept part of what was buffered): it is sealed at its real size, and
        the next append starts a new one. Its committed requests were on disk before their
        rows, so they are whole."""
        out, self._out = self._out, None
        if out is not None:
            with contextlib.suppress(OSError):  # what it held was not indexed: dead anyway
                out.close()
        try:
            real = self._segment_path(self._seg).stat().st_size
        except OSError:
            real = 0
        self.size_bytes += real - self._sizes[self._seg]
        self._sizes[self._seg] = real

    def close(self) -> None:
        with self.lock:
            if self._out is not None:
                with contextlib.suppress(OSError):  # nothing indexed is lost
                    self._out.close()
            self._db.close()

    # -- writing (the writer thread) ----------------------------------------------------

    def _append(self, body: bytes) -> tuple[int, int]:
        """Appends ``body`` to the current segment (sealing it first when full); returns the
        segment and the offset."""
        if self._out is None or self._sizes[self._seg] >= self.limits.segment_bytes:
            self._rotate()
        assert self._out is not None
        seg = self._seg
        offset = self._sizes[seg]
        self._out.write(body)
        self._sizes[seg] = offset + len(body)
        self.size_bytes += len(body)
        return seg, offset

    def write(self, batches: list[Batch], exchanges: list[tuple[Exchange, str]]) -> None:
        """Appends requests to the current segment and indexes them and captured calls in
        one transaction (the bytes reach the file before the rows that point at them).

        Args:
            batches: the requests.
            exchanges: the captured calls, each with its JSON text (ASCII: one byte a
                character, so its length is its size).
        """
        rows: list[tuple[int, int, int, int, float, int]] = []
        merged: dict[str, _Merged] = {}
        seq = self._next_seq
        db = self._db
        try:
            for batch in batches:
                size = len(batch.body)
                seg, offset = self._append(batch.body)
                rows.append((seq, seg, offset, size, batch.at, len(batch.summaries)))
                self._live[seg] = self._live.get(seg, 0) + size
                share = size / max(1, batch.spans)
                for s in batch.summaries:
                    found = merged.get(s.trace_id)
                    if found is None:
                        merged[s.trace_id] = _Merged(
                            s, batch.at, batch.at, share * s.spans, [seq], []
                        )
                    else:
                        found.add(s, batch.at, share * s.spans, seq)
                seq += 1
            if self._out is not None:
                self._out.flush()
            # a call whose trace has a request in this write goes into that trace's row; any
            # other into a row of its own trace (or the one stored before): one upsert a
            # trace, not one a trace and one a call
            calls: list[tuple[int, str, float, int, str]] = []
            alone: dict[str, tuple[float, int, list[int]]] = {}
            call = self._next_call
            for e, text in exchanges:
                calls.append((call, e.trace_id, e.at, len(text), text))
                found = merged.get(e.trace_id)
                if found is not None:
                    found.bytes += len(text)
                    found.calls.append(call)
                else:
                    at, size, listed = alone.get(e.trace_id, (e.at, 0, []))
                    listed.append(call)
                    alone[e.trace_id] = (at, size + len(text), listed)
                call += 1
            db.execute("BEGIN")
            insert_rows(db, "INSERT INTO batches", "(?, ?, ?, ?, ?, ?)", "", rows)
            insert_rows(
                db, _UPSERT_HEAD, _UPSERT_ROW, _UPSERT_TAIL, [m.row() for m in merged.values()]
            )
            captured = sum(c[3] for c in calls)
            if calls:
                insert_rows(
                    db, "INSERT INTO exchanges(seq, trace_id, at, bytes, body)", "(?, ?, ?, ?, ?)",
                    "", calls,
                )  # fmt: skip
                insert_rows(
                    db, _UPSERT_HEAD, _UPSERT_CALLS_ROW, _UPSERT_CALLS_TAIL,
                    [
                        (trace_id, at, at, size, " ".join(map(str, listed)))
                        for trace_id, (at, size, listed) in alone.items()
                    ],
                )  # fmt: skip
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            for _, seg, _, size, _, _ in rows:  # the bytes stay in the file, dead
                self._live[seg] -= size
            self._abandon_segment()
            raise
        self.size_bytes += captured
        self.live_bytes += sum(r[3] for r in rows) + captured
        self._next_seq = seq
        self._next_call = call

    def mark(self, marks: list[tuple[str, int]]) -> None:
        """Adds interesting-reason bits to traces (another engine said they matter)."""
        self._db.executemany(
            "UPDATE traces SET interesting = interesting | ? WHERE trace_id = ?",
            [(bits, trace_id) for trace_id, bits in marks],
        )

    def evict(self, now: float) -> int:
        """Drops traces past their retention, then the oldest until under the size cap
        (ordinary traces first, down to 90% of it), then gives the segments' dead bytes
        back; returns how many traces went."""
        limits = self.limits
        db = self._db
        # two range scans of the last_at index (an OR would scan the whole table)
        expired = [
            r[0]
            for r in db.execute(
                "SELECT trace_id FROM traces WHERE last_at < ? AND interesting = 0"
                " UNION SELECT trace_id FROM traces WHERE last_at < ?",
                (now - limits.retention, now - max(limits.keep_interesting_for, limits.retention)),
            )
        ]
        dropped = self._drop(expired)
        cap = self._cap()
        target = int(cap * 0.9)
        for interesting in (False, True):
            while self.live_bytes > target:
                rows = db.execute(
                    "SELECT trace_id, bytes FROM traces"
                    f" WHERE interesting {'!=' if interesting else '='} 0"
                    " ORDER BY last_at, start_ns LIMIT 500"
                ).fetchall()
                if not rows:
                    break
                batch, excess = [], self.live_bytes - target
                for trace_id, nbytes in rows:
                    batch.append(trace_id)
                    excess -= nbytes
                    if excess <= 0:
                        break
                gone = self._drop(batch)
                dropped += gone
                if interesting:
                    self.evicted_interesting += gone
        self._reclaim(cap)
        return dropped

    def _drop(self, trace_ids: list[str]) -> int:
        """Deletes traces, their captured calls and the requests no kept trace needs."""
        if not trace_ids:
            return 0
        db = self._db
        db.execute("BEGIN")
        try:
            captured, gone = self._drop_rows(trace_ids)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")  # a full disk: the rows stay, to go another time
            raise
        requests = 0
        for _, seg, size in gone:
            self._live[seg] -= size
            requests += size
        self.size_bytes -= captured
        self.live_bytes -= captured + requests
        self.evicted_traces += len(trace_ids)
        return len(trace_ids)

    def _drop_rows(self, trace_ids: list[str]) -> tuple[int, list[tuple[int, int, int]]]:
        """The deletes of :meth:`_drop`: the captured bytes and the requests that went."""
        db = self._db
        released: collections.Counter[int] = collections.Counter()
        calls: list[int] = []
        # Statements over many rows each, as the writes: the sqlite3 module gives the GIL up
        # around every statement's step, and the writer then waits up to the switch interval
        # for a busy event loop to hand it back (a statement a trace made an eviction of
        # 10,000 traces take seconds under load, the store's lock held)
        for at in range(0, len(trace_ids), _IN_CHUNK):
            ids = trace_ids[at : at + _IN_CHUNK]
            marks = ",".join("?" * len(ids))
            for seqs, listed in db.execute(
                f"SELECT seqs, calls FROM traces WHERE trace_id IN ({marks})", ids
            ):
                released.update(int(seq) for seq in seqs.split())
                calls += [int(call) for call in listed.split()]
            db.execute(f"DELETE FROM traces WHERE trace_id IN ({marks})", ids)
        captured = 0
        for at in range(0, len(calls), _IN_CHUNK):
            chunk = calls[at : at + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            captured += int(self._one(
                f"SELECT coalesce(sum(bytes), 0) FROM exchanges WHERE seq IN ({marks})",
                tuple(chunk),
            ))  # fmt: skip
            db.execute(f"DELETE FROM exchanges WHERE seq IN ({marks})", chunk)
        by_count: dict[int, list[int]] = collections.defaultdict(list)
        for seq, count in released.items():  # nearly all 1: a request of one trace
            by_count[count].append(seq)
        for count, seqs in by_count.items():
            for at in range(0, len(seqs), _IN_CHUNK):
                chunk = seqs[at : at + _IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                db.execute(
                    f"UPDATE batches SET refs = refs - ? WHERE seq IN ({marks})", (count, *chunk)
                )
        # a stored request goes with the last trace that needed it
        seqs = list(released)
        gone: list[tuple[int, int, int]] = []
        for at in range(0, len(seqs), _IN_CHUNK):
            chunk = seqs[at : at + _IN_CHUNK]
            gone += db.execute(
                "SELECT seq, seg, bytes FROM batches"
                f" WHERE refs <= 0 AND seq IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
        for at in range(0, len(gone), _IN_CHUNK):
            chunk = [seq for seq, _, _ in gone[at : at + _IN_CHUNK]]
            db.execute(f"DELETE FROM batches WHERE seq IN ({','.join('?' * len(chunk))})", chunk)
        return captured, gone

    def short_of_room(self) -> bool:
        """Whether the file system has less free room than the buffer leaves the other
        stores (:data:`FREE_SHARE`, at most :data:`FREE_MAX`): it writes nothing new then."""
        try:
            usage = shutil.disk_usage(self.segments_dir)
        except OSError:
            return False
        return usage.free < min(FREE_MAX, int(usage.total * FREE_SHARE))

    def _cap(self) -> int:
        """The size cap, lowered while the file system is short of room: the buffer leaves
        :data:`FREE_SHARE` of it (at most :data:`FREE_MAX` bytes) to the durable queue and
        the other stores of ``state_dir``, which it must never crowd out."""
        try:
            usage = shutil.disk_usage(self.segments_dir)
        except OSError:
            return self.limits.max_bytes
        reserve = min(FREE_MAX, int(usage.total * FREE_SHARE))
        return max(0, min(self.limits.max_bytes, self.size_bytes + usage.free - reserve))

    def _reclaim(self, cap: int) -> None:
        """Deletes segments no kept trace needs (first: that frees room with no copying);
        then copies the live requests of one mostly dead (or, over ``cap``, any but the
        current one) forward, oldest first, and deletes it."""
        live = self._live
        if not live.get(self._seg) and self._sizes[self._seg] and self._out is not None:
            self._out.truncate(0)  # the current segment is all dead: start it again
            self.size_bytes -= self._sizes[self._seg]
            self._sizes[self._seg] = 0
        for seg in [s for s in self._sizes if s != self._seg and not live.get(s)]:
            self._delete_segment(seg)
        if self.size_bytes > cap and self._sizes[self._seg] > live.get(self._seg, 0):
            self._rotate()  # its dead bytes are in the way: seal it so it can be compacted
        for seg in sorted(s for s in self._sizes if s != self._seg):
            if live.get(seg, 0) * 2 >= self._sizes[seg] and self.size_bytes <= cap:
                continue  # mostly live, and room enough
            try:
                self._copy_forward(seg)
            except OSError as exc:  # a full disk: what was copied is dead; try next pass
                log.warning("trace buffer: cannot compact %s (%s)", self._segment_path(seg), exc)
                self._abandon_segment()
                return
            self._delete_segment(seg)

    def _delete_segment(self, seg: int) -> None:
        self._segment_path(seg).unlink(missing_ok=True)
        self.size_bytes -= self._sizes.pop(seg)
        self._live.pop(seg, None)

    def _copy_forward(self, seg: int) -> None:
        """Appends the live requests of segment ``seg`` to the current one and points their
        rows there (their numbers stay, so the traces' lists of requests stay right)."""
        db = self._db
        rows = db.execute(
            "SELECT seq, offset, bytes FROM batches WHERE seg = ? ORDER BY seq", (seg,)
        ).fetchall()
        moved = []
        # one read (a segment is at most MAX_SEGMENT, or one request larger): a read a
        # request gave the GIL up each time, as a statement a row does
        data = self._segment_path(seg).read_bytes()
        for seq, offset, size in rows:
            to_seg, to_offset = self._append(data[offset : offset + size])
            moved.append((seq, to_seg, to_offset))
        del data
        if self._out is not None:
            self._out.flush()
        # the rows exist (read above, the lock held): each "insert" is the update of its row,
        # many rows a statement
        insert_rows(
            db, "INSERT INTO batches(seq, seg, offset, bytes, at, refs)", "(?, ?, ?, 0, 0, 0)",
            " ON CONFLICT(seq) DO UPDATE SET seg = excluded.seg, offset = excluded.offset",
            moved,
        )  # fmt: skip
        sizes = {seq: size for seq, _, size in rows}
        for seq, to_seg, _ in moved:  # counted once the rows point there
            self._live[to_seg] = self._live.get(to_seg, 0) + sizes[seq]
        self._live[seg] = 0

    # -- reading ------------------------------------------------------------------------

    def list_traces(self, query: TraceQuery) -> list[dict[str, Any]]:
        where: list[str] = ["spans > 0"]
        params: list[str | int] = []
        if query.agent:
            where.append("agent = ?")
            params.append(query.agent)
        if query.since is not None:
            where.append("end_ns >= ?")
            params.append(int(query.since * 1e9))
        if query.until is not None:
            where.append("start_ns <= ?")
            params.append(int(query.until * 1e9))
        if query.errors_only:
            where.append("errors > 0")
        if query.kind:
            where.append("(kinds & ?) != 0")
            params.append(1 << KINDS.index(query.kind))
        rows = self._db.execute(
            f"{_SUMMARY} WHERE {' AND '.join(where)} ORDER BY start_ns DESC LIMIT ?",
            (*params, query.limit),
        ).fetchall()
        return [_summary(row) for row in rows]

    def trace_summary(self, trace_id: str) -> dict[str, Any] | None:
        row = self._db.execute(f"{_SUMMARY} WHERE trace_id = ?", (trace_id,)).fetchone()
        return _summary(row) if row else None

    def batches(self, trace_id: str) -> list[bytes]:
        """The stored requests that carry spans of ``trace_id``, in the order stored."""
        row = self._db.execute("SELECT seqs FROM traces WHERE trace_id = ?", (trace_id,)).fetchone()
        if row is None or not row[0]:
            return []
        seqs = sorted({int(seq) for seq in row[0].split()})
        places: list[tuple[int, int, int, int]] = []
        for at in range(0, len(seqs), 500):
            chunk = seqs[at : at + 500]
            places += self._db.execute(
                "SELECT seq, seg, offset, bytes FROM batches"
                f" WHERE seq IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
        bodies: dict[int, bytes] = {}
        by_segment: dict[int, list[tuple[int, int, int]]] = collections.defaultdict(list)
        for seq, seg, offset, size in places:
            by_segment[seg].append((seq, offset, size))
        for seg, wanted in by_segment.items():
            path = self._segment_path(seg)
            first = min(offset for _, offset, _ in wanted)
            end = max(offset + size for _, offset, size in wanted)
            try:
                # one read a segment (at most its size): a read a request gave the GIL up
                # each time, and waited for a busy event loop to hand it back
                with path.open("rb") as source:
                    source.seek(first)
                    data = source.read(end - first)
            except FileNotFoundError:
                log.warning("trace buffer: %s is missing", path)
                continue
            for seq, offset, size in wanted:
                body = data[offset - first : offset - first + size]
                if len(body) == size:  # short: the machine lost it before a sync
                    bodies[seq] = body
                else:
                    log.warning(
                        "trace buffer: request %d in %s is cut short (%d of %d bytes)",
                        seq, path, len(body), size,
                    )  # fmt: skip
        return [bodies[seq] for seq in sorted(bodies)]

    def exchanges(self, trace_id: str) -> list[Exchange]:
        """The captured calls of ``trace_id``, in the order they were made."""
        row = self._db.execute(
            "SELECT calls FROM traces WHERE trace_id = ?", (trace_id,)
        ).fetchone()
        calls = [int(call) for call in row[0].split()] if row is not None else []
        found: list[tuple[float, int, str]] = []
        for at in range(0, len(calls), 500):
            chunk = calls[at : at + 500]
            found += self._db.execute(
                f"SELECT at, seq, body FROM exchanges WHERE seq IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
        return [Exchange.from_json(json.loads(body)) for _, _, body in sorted(found)]


def _summary(row: tuple[Any, ...]) -> dict[str, Any]:
    (trace_id, start_ns, end_ns, spans, errors, agent, root, kinds, interesting, cost,
     size, calls) = row  # fmt: skip
    return {
        "trace_id": trace_id,
        "start": start_ns / 1e9,
        "duration_seconds": max(0, end_ns - start_ns) / 1e9,
        "spans": spans,
        "errors": errors,
        "agent": agent,
        "root": root,
        "kinds": kind_names(kinds),
        "kept_because": reasons(interesting),
        "cost_usd": round(cost, 9),
        "stored_bytes": size,
        "calls_captured": len(calls.split()),
    }
