"""The trace buffer's SQLite store: accepted requests, a trace index, captured calls.

A request is stored once, as it was accepted (one row per request, never per span), with
an index row per trace it carries; a trace is read back by filtering its spans out of the
requests that carry it. Eviction drops whole traces, oldest first, ordinary ones before
interesting ones; a stored request goes when no kept trace needs it any more.

Every method is blocking and runs on the buffer's writer thread or in ``asyncio.to_thread``;
the caller holds :attr:`TraceStore.lock`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent_sre.replay.exchange import Exchange
from agent_sre.replay.traces import KINDS, kind_names, reasons

if TYPE_CHECKING:
    from pathlib import Path

    from agent_sre.replay.traces import TraceSummary

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches(
    seq INTEGER PRIMARY KEY, at REAL NOT NULL, bytes INTEGER NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS trace_batches(trace_id TEXT NOT NULL, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS trace_batches_trace ON trace_batches(trace_id);
CREATE INDEX IF NOT EXISTS trace_batches_seq ON trace_batches(seq);
CREATE TABLE IF NOT EXISTS traces(
    trace_id TEXT PRIMARY KEY, first_at REAL NOT NULL, last_at REAL NOT NULL,
    start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, spans INTEGER NOT NULL,
    errors INTEGER NOT NULL, agent TEXT NOT NULL, root TEXT NOT NULL, kinds INTEGER NOT NULL,
    interesting INTEGER NOT NULL, cost_usd REAL NOT NULL, bytes INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS traces_last ON traces(last_at);
CREATE TABLE IF NOT EXISTS exchanges(
    seq INTEGER PRIMARY KEY, trace_id TEXT NOT NULL, at REAL NOT NULL, bytes INTEGER NOT NULL,
    body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS exchanges_trace ON exchanges(trace_id);
"""

_UPSERT = """
INSERT INTO traces(trace_id, first_at, last_at, start_ns, end_ns, spans, errors, agent, root,
                   kinds, interesting, cost_usd, bytes)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
    bytes = bytes + excluded.bytes
"""

_SUMMARY = (
    "SELECT trace_id, start_ns, end_ns, spans, errors, agent, root, kinds, interesting,"
    " cost_usd, bytes, (SELECT count(*) FROM exchanges e WHERE e.trace_id = traces.trace_id)"
    " FROM traces"
)


@dataclass(frozen=True)
class Limits:
    """The store's caps (from ``replay:``)."""

    retention: float
    keep_interesting_for: float
    max_bytes: int


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


class TraceStore:
    """One SQLite file under ``state_dir``."""

    def __init__(self, path: Path, limits: Limits) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.limits = limits
        self.lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self.size_bytes = self._stored_bytes()
        self.evicted_traces = 0
        self.evicted_interesting = 0
        """Traces kept because they mattered that the size cap forced out (ever)."""

    def close(self) -> None:
        with self.lock:
            self._db.close()

    def _stored_bytes(self) -> int:
        row = self._db.execute(
            "SELECT (SELECT coalesce(sum(bytes), 0) FROM batches)"
            " + (SELECT coalesce(sum(bytes), 0) FROM exchanges)"
        ).fetchone()
        return int(row[0])

    # -- writing (the writer thread) ----------------------------------------------------

    def write(self, batches: list[Batch], exchanges: list[tuple[Exchange, bytes]]) -> None:
        """Stores requests and captured calls in one transaction."""
        db = self._db
        db.execute("BEGIN")
        try:
            for batch in batches:
                size = len(batch.body)
                seq = db.execute(
                    "INSERT INTO batches(at, bytes, body) VALUES (?, ?, ?)",
                    (batch.at, size, batch.body),
                ).lastrowid
                db.executemany(
                    "INSERT INTO trace_batches(trace_id, seq) VALUES (?, ?)",
                    [(s.trace_id, seq) for s in batch.summaries],
                )
                share = size / max(1, batch.spans)
                db.executemany(
                    _UPSERT,
                    [
                        (
                            s.trace_id,
                            batch.at,
                            batch.at,
                            s.start_ns,
                            s.end_ns,
                            s.spans,
                            s.errors,
                            s.agent,
                            s.root,
                            s.kinds,
                            s.interesting,
                            s.cost_usd,
                            int(share * s.spans),
                        )
                        for s in batch.summaries
                    ],  # fmt: skip
                )
                self.size_bytes += size
            for exchange, body in exchanges:
                size = len(body)
                db.execute(
                    "INSERT INTO exchanges(trace_id, at, bytes, body) VALUES (?, ?, ?, ?)",
                    (exchange.trace_id, exchange.at, size, body.decode()),
                )
                # a call whose span is not stored yet gets an index row to hang on
                db.execute(
                    "INSERT INTO traces(trace_id, first_at, last_at, start_ns, end_ns, spans,"
                    " errors, agent, root, kinds, interesting, cost_usd, bytes)"
                    " VALUES (?, ?, ?, 0, 0, 0, 0, '', '', 0, 0, 0, ?)"
                    " ON CONFLICT(trace_id) DO UPDATE SET bytes = bytes + excluded.bytes",
                    (exchange.trace_id, exchange.at, exchange.at, size),
                )
                self.size_bytes += size
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def mark(self, marks: list[tuple[str, int]]) -> None:
        """Adds interesting-reason bits to traces (another engine said they matter)."""
        self._db.executemany(
            "UPDATE traces SET interesting = interesting | ? WHERE trace_id = ?",
            [(bits, trace_id) for trace_id, bits in marks],
        )

    def evict(self, now: float) -> int:
        """Drops traces past their retention, then the oldest until under the size cap
        (ordinary traces first, down to 90% of it); returns how many traces went."""
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
        if self.size_bytes > limits.max_bytes:
            target = int(limits.max_bytes * 0.9)
            for interesting in (False, True):
                while self.size_bytes > target:
                    rows = db.execute(
                        "SELECT trace_id, bytes FROM traces"
                        f" WHERE interesting {'!=' if interesting else '='} 0"
                        " ORDER BY last_at, start_ns LIMIT 500"
                    ).fetchall()
                    if not rows:
                        break
                    batch, excess = [], self.size_bytes - target
                    for trace_id, nbytes in rows:
                        batch.append(trace_id)
                        excess -= nbytes
                        if excess <= 0:
                            break
                    gone = self._drop(batch)
                    dropped += gone
                    if interesting:
                        self.evicted_interesting += gone
        if dropped:
            db.execute("PRAGMA incremental_vacuum")
        return dropped

    def _drop(self, trace_ids: list[str]) -> int:
        if not trace_ids:
            return 0
        db = self._db
        db.execute("BEGIN")
        freed = 0
        seqs: set[int] = set()
        for trace_id in trace_ids:
            seqs.update(
                r[0] for r in db.execute("SELECT seq FROM trace_batches WHERE trace_id = ?",
                                         (trace_id,))
            )  # fmt: skip
            row = db.execute(
                "SELECT coalesce(sum(bytes), 0) FROM exchanges WHERE trace_id = ?", (trace_id,)
            ).fetchone()
            freed += int(row[0])
            db.execute("DELETE FROM trace_batches WHERE trace_id = ?", (trace_id,))
            db.execute("DELETE FROM exchanges WHERE trace_id = ?", (trace_id,))
            db.execute("DELETE FROM traces WHERE trace_id = ?", (trace_id,))
        # a stored request goes with the last trace that needed it
        for seq in seqs:
            if db.execute("SELECT 1 FROM trace_batches WHERE seq = ? LIMIT 1", (seq,)).fetchone():
                continue
            row = db.execute("SELECT bytes FROM batches WHERE seq = ?", (seq,)).fetchone()
            if row is not None:
                freed += int(row[0])
                db.execute("DELETE FROM batches WHERE seq = ?", (seq,))
        db.execute("COMMIT")
        self.size_bytes -= freed
        self.evicted_traces += len(trace_ids)
        return len(trace_ids)

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
        return [
            bytes(r[0])
            for r in self._db.execute(
                "SELECT body FROM batches WHERE seq IN"
                " (SELECT seq FROM trace_batches WHERE trace_id = ?) ORDER BY seq",
                (trace_id,),
            )
        ]

    def exchanges(self, trace_id: str) -> list[Exchange]:
        return [
            Exchange.from_json(json.loads(r[0]))
            for r in self._db.execute(
                "SELECT body FROM exchanges WHERE trace_id = ? ORDER BY at, seq", (trace_id,)
            )
        ]


def _summary(row: tuple[Any, ...]) -> dict[str, Any]:
    (trace_id, start_ns, end_ns, spans, errors, agent, root, kinds, interesting, cost,
     size, exchanges) = row  # fmt: skip
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
        "calls_captured": exchanges,
    }
