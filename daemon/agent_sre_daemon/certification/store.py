"""Certification evidence in ``<state_dir>/certification.sqlite``, written off the event loop.

One row per (agent, version, bucket) of span counters (changed buckets are written every
save, never a row per span), the marks heard on the bus (budget exhaustions, rollout
outcomes; at most :data:`MAX_MARKS`, the oldest go), and the tier each version last held
(so a restart does not announce tiers again). Every call runs in one worker thread: SQLite
sees one writer and the loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from agent_sre_daemon.clock import SYSTEM_CLOCK
from agent_sre_daemon.stores.sqlite import open_database

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Iterable
    from pathlib import Path

    from agent_sre_daemon.clock import Clock

log = logging.getLogger("agent_sre.certification")

STORE_FILE = "certification.sqlite"
MAX_MARKS = 10_000
"""Marks kept in all (budget exhaustions and rollout outcomes); beyond, the oldest go."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (
    agent TEXT NOT NULL, version TEXT NOT NULL, at REAL NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (agent, version, at));
CREATE TABLE IF NOT EXISTS marks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, agent TEXT NOT NULL,
    at REAL NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS marks_at ON marks (at);
CREATE TABLE IF NOT EXISTS tiers (
    agent TEXT NOT NULL, version TEXT NOT NULL, tier TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (agent, version));
"""

BucketRow = tuple[str, str, float, "dict[str, Any] | None"]


class CertificationStore:
    def __init__(self, path: Path, clock: Clock = SYSTEM_CLOCK) -> None:
        self.path = path
        self.clock = clock
        self._db: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cert-store")

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def open(self) -> None:
        await self._run(self._open)

    async def buckets(self) -> list[tuple[str, str, float, str]]:
        rows: list[tuple[str, str, float, str]] = await self._run(self._buckets)
        return rows

    async def marks(self) -> list[tuple[str, str, float, str]]:
        rows: list[tuple[str, str, float, str]] = await self._run(self._marks)
        return rows

    async def tiers(self) -> dict[tuple[str, str], str]:
        found: dict[tuple[str, str], str] = await self._run(self._tiers)
        return found

    async def save(
        self,
        buckets: list[BucketRow],
        forgotten: list[tuple[str, str]],
        marks: list[tuple[str, str, float, dict[str, Any]]],
        tiers: dict[tuple[str, str], str | None],
        oldest: float,
        now: float,
    ) -> None:
        """Writes changed buckets (None: deleted), drops evicted versions, adds marks,
        records tiers (None: none), drops marks and buckets older than ``oldest``."""
        await self._run(self._save, buckets, forgotten, marks, tiers, oldest, now)

    async def close(self) -> None:
        await self._run(self._close)
        self._executor.shutdown(wait=True)

    # -- in the store's thread -----------------------------------------------------------

    def _open(self) -> None:
        def setup(db: sqlite3.Connection) -> None:
            db.executescript(_SCHEMA)
            db.execute("SELECT agent, version, at, data FROM buckets LIMIT 1")
            db.execute("SELECT kind, agent, at, data FROM marks LIMIT 1")
            db.execute("SELECT agent, version, tier, at FROM tiers LIMIT 1")

        self._db = open_database(self.path, setup, clock=self.clock, lost="certification evidence")

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("certification store is not open")
        return self._db

    def _buckets(self) -> list[tuple[str, str, float, str]]:
        rows = self._conn().execute("SELECT agent, version, at, data FROM buckets ORDER BY at")
        return [(str(a), str(v), float(at), str(d)) for a, v, at, d in rows]

    def _marks(self) -> list[tuple[str, str, float, str]]:
        rows = self._conn().execute("SELECT kind, agent, at, data FROM marks ORDER BY at")
        return [(str(k), str(a), float(at), str(d)) for k, a, at, d in rows]

    def _tiers(self) -> dict[tuple[str, str], str]:
        rows = self._conn().execute("SELECT agent, version, tier FROM tiers")
        return {(str(a), str(v)): str(t) for a, v, t in rows}

    def _save(
        self,
        buckets: list[BucketRow],
        forgotten: list[tuple[str, str]],
        marks: list[tuple[str, str, float, dict[str, Any]]],
        tiers: dict[tuple[str, str], str | None],
        oldest: float,
        now: float,
    ) -> None:
        db = self._conn()
        with db:
            db.execute("BEGIN")
            for agent, version in forgotten:
                db.execute("DELETE FROM buckets WHERE agent = ? AND version = ?", (agent, version))
                db.execute("DELETE FROM tiers WHERE agent = ? AND version = ?", (agent, version))
            _write_buckets(db, buckets)
            db.executemany(
                "INSERT INTO marks (kind, agent, at, data) VALUES (?, ?, ?, ?)",
                [(kind, agent, at, json.dumps(data)) for kind, agent, at, data in marks],
            )
            for (agent, version), tier in tiers.items():
                if tier is None:
                    db.execute(
                        "DELETE FROM tiers WHERE agent = ? AND version = ?", (agent, version)
                    )
                else:
                    db.execute(
                        "INSERT INTO tiers (agent, version, tier, at) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT(agent, version) DO UPDATE SET tier = excluded.tier, "
                        "at = excluded.at",
                        (agent, version, tier, now),
                    )
            db.execute("DELETE FROM buckets WHERE at < ?", (oldest,))
            db.execute("DELETE FROM marks WHERE at < ?", (oldest,))
            db.execute(
                "DELETE FROM marks WHERE id <= (SELECT MAX(id) FROM marks) - ?", (MAX_MARKS,)
            )

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _write_buckets(db: sqlite3.Connection, rows: Iterable[BucketRow]) -> None:
    gone = []
    kept = []
    for agent, version, at, data in rows:
        if data is None:
            gone.append((agent, version, at))
        else:
            kept.append((agent, version, at, json.dumps(data)))
    db.executemany("DELETE FROM buckets WHERE agent = ? AND version = ? AND at = ?", gone)
    db.executemany(
        "INSERT INTO buckets (agent, version, at, data) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(agent, version, at) DO UPDATE SET data = excluded.data",
        kept,
    )
