"""Opening a store's SQLite file, and what happens when it is not a database any more.

A file SQLite reports as corrupt (``SQLITE_CORRUPT``, ``SQLITE_NOTADB``) is moved aside as
``<file>.corrupt-<UTC time>`` (with its ``-wal`` and ``-shm``), kept for inspection, and the
store starts empty; the error log names both files and what was lost. Any other failure to
open (permissions, a full disk) stops the start with a :class:`StoreStartError` naming the
file, never a raw traceback.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from typing import TYPE_CHECKING

from agent_sre_daemon.stores.errors import StoreStartError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from agent_sre_daemon.clock import Clock

log = logging.getLogger("agent_sre.stores")

_CORRUPT = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})


def is_corruption(exc: sqlite3.Error) -> bool:
    """Whether SQLite says the file is damaged or not a database at all."""
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    if name:
        return any(name == code or name.startswith(code + "_") for code in _CORRUPT)
    text = str(exc)
    return "not a database" in text or "malformed" in text


def open_database(
    path: Path,
    setup: Callable[[sqlite3.Connection], None],
    *,
    clock: Clock,
    lost: str,
) -> sqlite3.Connection:
    """Opens ``path`` (creating it), runs ``setup`` (pragmas, schema, the first reads).

    Args:
        setup: raises :class:`sqlite3.Error` if the file is unusable.
        clock: for the name of a moved-aside file.
        lost: what a corrupt file loses, for the log ("requests waiting to be sent").

    Raises:
        StoreStartError: the file cannot be opened for another reason than corruption.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreStartError(f"cannot create {path.parent}: {exc}") from None
    for attempt in (1, 2):
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            setup(db)
            return db
        except sqlite3.Error as exc:
            if db is not None:
                db.close()
            if attempt == 1 and is_corruption(exc):
                kept = _move_aside(path, clock)
                log.error(
                    "%s is not a usable SQLite database (%s); moved it to %s and started with "
                    "an empty one: %s in it are not used. Keep the file for inspection or "
                    "delete it.",
                    path,
                    exc,
                    kept,
                    lost,
                )
                continue
            raise StoreStartError(
                f"cannot open {path}: {exc}. Check the file's permissions and the free space "
                f"of its file system; if the file is damaged, move it away (the daemon starts "
                f"with an empty one)."
            ) from None
    raise AssertionError("unreachable")


def _move_aside(path: Path, clock: Clock) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock.time()))
    kept = path.with_name(f"{path.name}.corrupt-{stamp}")
    try:
        os.replace(path, kept)
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                os.replace(side, kept.with_name(kept.name + suffix))
    except OSError as exc:
        raise StoreStartError(
            f"{path} is damaged and could not be moved aside ({exc}); move or delete it"
        ) from None
    return kept
