"""One thread per SQLite file that does all its disk work, so the event loop never waits on it.

Jobs run in the order they were submitted. Consecutive *grouped* jobs (queue puts) that
arrive while the thread is busy run together in one transaction: one commit, and with
``synchronous=FULL`` one fsync, for all of them (a group commit). The event loop awaits a
job's future; scripts and tests call :meth:`SqliteWriter.run` and block.

Every :class:`sqlite3.Error` a job raises reaches its caller as a :class:`StorageError`
(disk full, I/O error, read-only file system...), never as a raw SQLite error.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
import threading
from collections import deque
from typing import TYPE_CHECKING, Any, TypeVar

from agent_sre_daemon.stores.errors import StorageError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

T = TypeVar("T")
Job = tuple["Callable[[sqlite3.Connection], Any]", "concurrent.futures.Future[Any]", bool]

MAX_GROUP = 512
"""Most jobs committed in one transaction (bounds the time one commit holds the others)."""


class SqliteWriter:
    """Owns a connection (autocommit mode) and the one thread that uses it.

    Args:
        db: the open connection (``check_same_thread=False``); the writer closes it.
        path: the file, for messages.
    """

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self.path = path
        self._db = db
        self._jobs: deque[Job | None] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._closed = False
        self.commits = 0
        """Grouped transactions committed (each held one or more jobs)."""
        self._thread = threading.Thread(
            target=self._work, name=f"sqlite-writer:{path.name}", daemon=True
        )
        self._thread.start()

    def submit(
        self, job: Callable[[sqlite3.Connection], T], *, group: bool = False
    ) -> concurrent.futures.Future[T]:
        """Queues ``job``; ``group``: it may share a transaction with its neighbours (the job
        must then not begin or commit one itself)."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._ready:
            if self._closed:
                future.set_exception(StorageError(f"{self.path}: store is closed"))
                return future
            self._jobs.append((job, future, group))
            self._ready.notify()
        return future

    async def call(self, job: Callable[[sqlite3.Connection], T], *, group: bool = False) -> T:
        """Runs ``job`` on the writer thread and waits for it without blocking the loop."""
        return await asyncio.wrap_future(self.submit(job, group=group))

    def run(self, job: Callable[[sqlite3.Connection], T], *, group: bool = False) -> T:
        """Runs ``job`` on the writer thread and blocks until it is done (not on the loop)."""
        return self.submit(job, group=group).result()

    def close(self) -> None:
        """Runs what is queued, then closes the connection and ends the thread."""
        with self._ready:
            if self._closed:
                return
            self._closed = True
            self._jobs.append(None)
            self._ready.notify()
        self._thread.join()

    # -- the writer thread ----------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._jobs:
                    self._ready.wait()
                head = self._jobs.popleft()
                group: list[Job] = []
                if head is not None and head[2]:
                    group.append(head)
                    while self._jobs and len(group) < MAX_GROUP:
                        nxt = self._jobs[0]
                        if nxt is None or not nxt[2]:
                            break
                        group.append(nxt)
                        self._jobs.popleft()
            if head is None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()
                return
            if group:
                self._run_group(group)
            else:
                self._run_one(head)

    def _run_one(self, job: Job) -> None:
        fn, future, _ = job
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = fn(self._db)
        except sqlite3.Error as exc:
            future.set_exception(self._storage_error(exc))
        except BaseException as exc:  # the caller sees it; the thread lives on
            future.set_exception(exc)
        else:
            future.set_result(result)

    def _run_group(self, group: list[Job]) -> None:
        # A job whose caller gave up before it ran is skipped (its caller undoes its part).
        live = [job for job in group if job[1].set_running_or_notify_cancel()]
        if not live:
            return
        db = self._db
        results: list[Any] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                for fn, _, _ in live:
                    results.append(fn(db))
                db.execute("COMMIT")
                self.commits += 1
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            error = self._storage_error(exc)
            for _, future, _ in live:
                future.set_exception(error)
            return
        except BaseException as exc:
            for _, future, _ in live:
                future.set_exception(exc)
            return
        for (_, future, _), result in zip(live, results, strict=True):
            future.set_result(result)

    def _storage_error(self, exc: sqlite3.Error) -> StorageError:
        name = getattr(exc, "sqlite_errorname", type(exc).__name__)
        return StorageError(f"{self.path}: {name}: {exc}")
