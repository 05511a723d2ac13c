"""Opening a store's SQLite file, and what happens when it is not a database any more.

A file SQLite reports as corrupt (``SQLITE_CORRUPT``, ``SQLITE_NOTADB``), one cut short
(shorter than its header says), and one of another schema (a table without the columns
this release reads) is set aside (:mod:`agent_sre_daemon.stores.aside`): moved to
``<file>.corrupt-<UTC time>`` (with its ``-wal`` and ``-shm``), kept for inspection, logged
naming both files and what was lost, signalled; the store starts empty. Any other failure
to open (permissions, a full disk) stops the start with a :class:`StoreStartError` naming
the file, never a raw traceback.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from typing import TYPE_CHECKING

from agent_sre_daemon.stores import aside
from agent_sre_daemon.stores.errors import StoreStartError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from agent_sre_daemon.clock import Clock

log = logging.getLogger("agent_sre.stores")

_CORRUPT = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})
_OTHER_SCHEMA = re.compile(
    r"no such (column|table)|has no column named|has \d+ columns but \d+ values"
)
_HEADER = b"SQLite format 3\x00"


class CutShortError(sqlite3.DatabaseError):
    """The file is shorter than its header says (cut short by a full disk or a copy)."""


def cut_short(path: Path) -> str | None:
    """Why ``path`` is shorter than its SQLite header says it is, or None (also when it is
    no SQLite file at all: SQLite says so itself)."""
    try:
        with path.open("rb") as file:
            header = file.read(100)
            size = path.stat().st_size
    except FileNotFoundError:
        return None
    if len(header) < 100 or not header.startswith(_HEADER):
        return None
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    if header[24:28] != header[92:96] or pages == 0:
        return None  # the header's size is not kept current (an old writer): nothing to say
    if size < pages * page_size:
        return f"{size} bytes where its header says {pages * page_size}: the file was cut short"
    return None


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
            short = cut_short(path)
            if short is not None:
                raise CutShortError(short)
            db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            # a delete must not need the room of what it deletes: with secure_delete on
            # (Debian's build default) freed pages are zeroed through the WAL, so a full
            # disk could never be emptied; FAST zeroes only what costs no extra write
            db.execute("PRAGMA secure_delete=FAST")
            setup(db)
            return db
        except sqlite3.Error as exc:
            if db is not None:
                db.close()
            unusable = is_corruption(exc) or isinstance(exc, CutShortError)
            other_schema = isinstance(exc, sqlite3.OperationalError) and bool(
                _OTHER_SCHEMA.search(str(exc))
            )
            if attempt == 1 and (unusable or other_schema):
                kept = _move_aside(path, clock)
                why = "of another schema" if other_schema else "not a usable SQLite database"
                log.error(
                    "%s is %s (%s); moved it to %s and started with an empty one: %s in it "
                    "are not used. Keep the file for inspection or delete it.",
                    path,
                    why,
                    exc,
                    kept,
                    lost,
                )
                aside.report(path.name, f"the whole file ({lost})", f"{why}: {exc}", kept)
                continue
            raise StoreStartError(
                f"cannot open {path}: {exc}. Check the file's permissions and the free space "
                f"of its file system; if the file is damaged, move it away (the daemon starts "
                f"with an empty one)."
            ) from None
    raise AssertionError("unreachable")


def _move_aside(path: Path, clock: Clock) -> Path:
    try:
        return aside.move_aside(path, "corrupt", clock)
    except OSError as exc:
        raise StoreStartError(
            f"{path} is damaged and could not be moved aside ({exc}); move or delete it"
        ) from None
