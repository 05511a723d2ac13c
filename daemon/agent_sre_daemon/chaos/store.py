"""Run results in ``<state_dir>/chaos.sqlite``, written off the event loop by one thread.

Every call goes through a single-thread executor, so SQLite sees one writer and the loop
never waits on the disk. A run is one row: its id, experiment, state, start and its JSON.
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

log = logging.getLogger("agent_sre.chaos")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, experiment TEXT NOT NULL, state TEXT NOT NULL,
    started_at REAL NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at);
"""


class RunStore:
    def __init__(self, path: Path, clock: Clock = SYSTEM_CLOCK) -> None:
        self.path = path
        self.clock = clock
        self._db: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chaos-store")

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def open(self) -> None:
        await self._run(self._open)

    async def save(self, run: dict[str, Any]) -> None:
        await self._run(self._save, run)

    async def runs(self, experiment: str = "", limit: int = 100) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await self._run(self._list, experiment, limit)
        return rows

    async def get(self, run_id: str) -> dict[str, Any] | None:
        row: dict[str, Any] | None = await self._run(self._get, run_id)
        return row

    async def unfinished(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await self._run(self._unfinished)
        return rows

    async def close(self) -> None:
        await self._run(self._close)
        self._executor.shutdown(wait=True)

    # -- in the store's thread -----------------------------------------------------------

    def _open(self) -> None:
        def setup(db: sqlite3.Connection) -> None:
            db.executescript(_SCHEMA)
            # the columns this release reads (another schema fails here: set aside)
            db.execute("SELECT id, experiment, state, started_at, data FROM runs LIMIT 1")

        self._db = open_database(self.path, setup, clock=self.clock, lost="chaos run results")

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("chaos run store is not open")
        return self._db

    def _save(self, run: dict[str, Any]) -> None:
        db = self._conn()
        db.execute(
            "INSERT INTO runs (id, experiment, state, started_at, data) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET state = excluded.state, data = excluded.data",
            (run["id"], run["experiment"], run["state"], run["started_at"], json.dumps(run)),
        )
        db.commit()

    def _list(self, experiment: str, limit: int) -> list[dict[str, Any]]:
        sql = "SELECT data FROM runs"
        args: tuple[Any, ...] = ()
        if experiment:
            sql += " WHERE experiment = ?"
            args = (experiment,)
        sql += " ORDER BY started_at DESC LIMIT ?"
        return _readable(self._conn().execute(sql, (*args, limit)))

    def _get(self, run_id: str) -> dict[str, Any] | None:
        rows = self._conn().execute("SELECT data FROM runs WHERE id = ?", (run_id,))
        found = _readable(rows)
        return found[0] if found else None

    def _unfinished(self) -> list[dict[str, Any]]:
        rows = self._conn().execute(
            "SELECT data FROM runs WHERE state IN ('running', 'observing') ORDER BY started_at"
        )
        return _readable(rows)

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _readable(rows: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """The runs of ``rows`` this release can read (others are skipped, logged)."""
    out = []
    for (data,) in rows:
        try:
            run = json.loads(data)
        except (TypeError, ValueError, RecursionError) as exc:
            log.warning("a chaos run in the store cannot be read (skipped): %s", exc)
            continue
        if isinstance(run, dict):
            out.append(run)
    return out
