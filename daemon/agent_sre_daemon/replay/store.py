"""The trace buffer's SQLite store: trace parts, a trace index, captured calls.

Every method is blocking and runs on the buffer's writer thread or in ``asyncio.to_thread``;
one lock serialises them. Sizes are the stored bytes of spans and bodies; eviction takes
whole traces, oldest first, ordinary ones before interesting ones.
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

    from agent_sre.replay.traces import TracePart

SCHEMA = """
CREATE TABLE IF NOT EXISTS parts(
    seq INTEGER PRIMARY KEY, trace_id TEXT NOT NULL, at REAL NOT NULL, body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS parts_trace ON parts(trace_id);
CREATE TABLE IF NOT EXISTS traces(
    trace_id TEXT PRIMARY KEY, first_at REAL NOT NULL, last_at REAL NOT NULL,
    start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, spans INTEGER NOT NULL,
    errors INTEGER NOT NULL, agent TEXT NOT NULL, root TEXT NOT NULL, kinds INTEGER NOT NULL,
    interesting INTEGER NOT NULL, cost_usd REAL NOT NULL, bytes INTEGER NOT NULL,
    captured_bytes INTEGER NOT NULL DEFAULT 0);
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
    start_ns = min(start_ns, excluded.start_ns),
    end_ns = max(end_ns, excluded.end_ns),
    spans = spans + excluded.spans,
    errors = errors + excluded.errors,
    agent = CASE WHEN agent = '' THEN excluded.agent ELSE agent END,
    root = CASE WHEN excluded.root != '' THEN excluded.root ELSE root END,
    kinds = kinds | excluded.kinds,
    interesting = interesting | excluded.interesting,
    cost_usd = cost_usd + excluded.cost_usd,
    bytes = bytes + excluded.bytes
"""


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
        row = self._db.execute(
            "SELECT coalesce(sum(bytes), 0) + coalesce(sum(captured_bytes), 0) FROM traces"
        ).fetchone()
        self.size_bytes = int(row[0])
        self.evicted_traces = 0

    def close(self) -> None:
        with self.lock:
            self._db.close()

    # -- writing (the writer thread) ----------------------------------------------------

    def write(
        self, parts: list[tuple[TracePart, float]], exchanges: list[tuple[Exchange, bytes]]
    ) -> None:
        """Stores trace parts and captured calls in one transaction (caller holds the lock)."""
        db = self._db
        db.execute("BEGIN")
        try:
            if parts:
                db.executemany(
                    "INSERT INTO parts(trace_id, at, body) VALUES (?, ?, ?)",
                    [(p.summary.trace_id, at, p.body) for p, at in parts],
                )
                db.executemany(
                    _UPSERT,
                    [
                        (
                            s.trace_id,
                            at,
                            at,
                            s.start_ns,
                            s.end_ns,
                            s.spans,
                            s.errors,
                            s.agent,
                            s.root,
                            s.kinds,
                            s.interesting,
                            s.cost_usd,
                            len(p.body),
                        )
                        for p, at in parts
                        for s in (p.summary,)
                    ],  # fmt: skip
                )
                self.size_bytes += sum(len(p.body) for p, _ in parts)
            for exchange, body in exchanges:
                size = len(body)
                db.execute(
                    "INSERT INTO exchanges(trace_id, at, bytes, body) VALUES (?, ?, ?, ?)",
                    (exchange.trace_id, exchange.at, size, body.decode()),
                )
                # a call seen before its span: an index row to hang it on
                db.execute(
                    "INSERT INTO traces(trace_id, first_at, last_at, start_ns, end_ns, spans,"
                    " errors, agent, root, kinds, interesting, cost_usd, bytes, captured_bytes)"
                    " VALUES (?, ?, ?, 0, 0, 0, 0, '', '', 0, 0, 0, 0, ?)"
                    " ON CONFLICT(trace_id) DO UPDATE SET"
                    " captured_bytes = captured_bytes + excluded.captured_bytes",
                    (exchange.trace_id, exchange.at, exchange.at, size),
                )
                self.size_bytes += size
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def captured_bytes(self, trace_id: str) -> int:
        row = self._db.execute(
            "SELECT captured_bytes FROM traces WHERE trace_id = ?", (trace_id,)
        ).fetchone()
        return int(row[0]) if row else 0

    def evict(self, now: float) -> int:
        """Drops traces past their retention, then the oldest until under the size cap
        (ordinary traces first); returns how many traces went (caller holds the lock)."""
        limits = self.limits
        db = self._db
        doomed = [
            r[0]
            for r in db.execute(
                "SELECT trace_id FROM traces WHERE (interesting = 0 AND last_at < ?)"
                " OR last_at < ?",
                (now - limits.retention, now - max(limits.keep_interesting_for, limits.retention)),
            )
        ]
        self._drop(doomed)
        if self.size_bytes > limits.max_bytes:
            target = int(limits.max_bytes * 0.9)
            for interesting in (False, True):
                rows = db.execute(
                    "SELECT trace_id, bytes + captured_bytes FROM traces"
                    f" WHERE interesting {'!=' if interesting else '='} 0 ORDER BY last_at",
                )
                batch = []
                size = self.size_bytes
                for trace_id, nbytes in rows:
                    if size <= target:
                        break
                    batch.append(trace_id)
                    size -= nbytes
                doomed += batch
                self._drop(batch)
                if self.size_bytes <= target:
                    break
        if doomed:
            db.execute("PRAGMA incremental_vacuum")
        return len(doomed)

    def _drop(self, trace_ids: list[str]) -> None:
        if not trace_ids:
            return
        db = self._db
        db.execute("BEGIN")
        freed = 0
        for trace_id in trace_ids:
            row = db.execute(
                "SELECT bytes + captured_bytes FROM traces WHERE trace_id = ?", (trace_id,)
            ).fetchone()
            freed += int(row[0]) if row else 0
            db.execute("DELETE FROM parts WHERE trace_id = ?", (trace_id,))
            db.execute("DELETE FROM exchanges WHERE trace_id = ?", (trace_id,))
            db.execute("DELETE FROM traces WHERE trace_id = ?", (trace_id,))
        db.execute("COMMIT")
        self.size_bytes -= freed
        self.evicted_traces += len(trace_ids)

    # -- reading (asyncio.to_thread; caller holds the lock) ----------------------------

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
            "SELECT trace_id, start_ns, end_ns, spans, errors, agent, root, kinds, interesting,"
            " cost_usd, bytes + captured_bytes, (SELECT count(*) FROM exchanges e"
            " WHERE e.trace_id = traces.trace_id)"
            f" FROM traces WHERE {' AND '.join(where)} ORDER BY start_ns DESC LIMIT ?",
            (*params, query.limit),
        ).fetchall()
        return [_summary(row) for row in rows]

    def trace_summary(self, trace_id: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT trace_id, start_ns, end_ns, spans, errors, agent, root, kinds, interesting,"
            " cost_usd, bytes + captured_bytes, (SELECT count(*) FROM exchanges e"
            " WHERE e.trace_id = traces.trace_id) FROM traces WHERE trace_id = ?",
            (trace_id,),
        ).fetchone()
        return _summary(row) if row else None

    def parts(self, trace_id: str) -> list[bytes]:
        return [
            bytes(r[0])
            for r in self._db.execute(
                "SELECT body FROM parts WHERE trace_id = ? ORDER BY seq", (trace_id,)
            )
        ]

    def exchanges(self, trace_id: str) -> list[Exchange]:
        return [
            Exchange.from_json(json.loads(r[0]))
            for r in self._db.execute(
                "SELECT body FROM exchanges WHERE trace_id = ? ORDER BY at, seq", (trace_id,)
            )
        ]

    def counts(self) -> dict[str, int]:
        traces, spans = self._db.execute(
            "SELECT count(*), coalesce(sum(spans), 0) FROM traces"
        ).fetchone()
        return {"traces": int(traces), "spans": int(spans), "bytes": self.size_bytes}


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
