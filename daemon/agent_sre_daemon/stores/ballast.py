"""Room kept back in ``state_dir`` for giving room back.

On a full file system every store is stuck: the durable queue cannot delete what the
upstream took (SQLite appends to its WAL even to delete), and the trace buffer cannot drop
old traces for the same reason, so the daemon would refuse new spans long after the
upstream came back. A ballast file (``<state_dir>/ballast``, 1% of the file system, from
2 MiB to 8 MiB; removed at a clean stop) holds some room back: a store whose delete
fails for want of room
releases it (:func:`release`, logged once), the durable queue refuses new requests until
that room is free again (:func:`holding_back`), the deletes go through, and the ballast is
laid again (:func:`tend`) once the file system has room for it and as much again.

Every function here touches the disk: call them off the event loop.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger("agent_sre.stores")

FILE = "ballast"
MIN_BYTES = 2 * 1024 * 1024
MAX_BYTES = 8 * 1024 * 1024
"""Deletes need little room (the WAL frames of the pages they touch, with ``secure_delete``
FAST), but the checkpoint after them moves what the WAL holds into the file: twice the
queue's WAL limit (1 MiB) at least."""
SHARE = 0.01

_lock = threading.Lock()
_path: Path | None = None
_released = False
_holding = False
"""Released, and the room it gave is not back yet: growth waits (the queue refuses)."""


def is_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the file system (or SQLite's file on it) is full."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL":
        return True
    text = str(exc)
    return "SQLITE_FULL" in text or "disk is full" in text or "No space left" in text


def size_for(total: int) -> int:
    """The ballast of a file system of ``total`` bytes."""
    return max(MIN_BYTES, min(MAX_BYTES, int(total * SHARE)))


def holding_back() -> bool:
    """Whether the room the ballast gave is kept for deletes: the durable queue refuses new
    requests meanwhile (a read of a flag, cheap on the event loop; :func:`tend` clears it
    once the file system has half the ballast's room free again)."""
    return _holding


def lay(state_dir: Path) -> None:
    """Makes ``state_dir``'s ballast (at start); a file system without room for it gets
    none yet (:func:`tend` lays it later)."""
    global _path, _released, _holding
    with _lock:
        _path = state_dir / FILE
        _released = _holding = False
    tend()


def tend() -> None:
    """Lays the ballast again when it is missing and the file system has room for it twice
    over; lets growth go on once it has the ballast's room (a no-op when there is none to
    tend)."""
    global _released, _holding
    with _lock:
        path = _path
        if path is None:
            return
        try:
            usage = shutil.disk_usage(path.parent)
            want = size_for(usage.total)
            have = path.stat().st_size if path.exists() else 0
            if have >= want:
                return
            # half its room free again: the deletes had theirs, growth may go on
            _holding = _released and usage.free < want // 2
            if usage.free < 2 * (want - have):
                return
            _write(path, want)
        except OSError as exc:
            log.debug("ballast: cannot lay %s: %s", path, exc)
            return
        _holding = False
        if _released:
            _released = False
            log.warning("state_dir has room again: the ballast of %d KiB is laid", want // 1024)


def remove() -> None:
    """Removes the ballast (a clean stop: it is laid again at the next start)."""
    global _path, _holding
    with _lock:
        path, _path = _path, None
        _holding = False
    if path is not None:
        path.unlink(missing_ok=True)


def release(why: str) -> bool:
    """Frees the ballast so the stores can delete (``why``: who needs it); True when it
    held room."""
    global _released, _holding
    with _lock:
        path = _path
        if path is None or not path.exists():
            return False
        try:
            size = path.stat().st_size
            path.unlink()
        except OSError:
            return False
        _released = _holding = True
    log.warning(
        "state_dir is full (%s): released its ballast of %d KiB so the stores can delete "
        "what they no longer need",
        why,
        size // 1024,
    )
    return True


def _write(path: Path, size: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("wb") as out:
            chunk = b"\0" * 65536
            left = size
            while left > 0:  # written, not sparse: the room must really be taken
                out.write(chunk[: min(left, len(chunk))])
                left -= len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
