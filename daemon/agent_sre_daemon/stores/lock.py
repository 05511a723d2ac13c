"""One daemon per ``state_dir``: an exclusive ``flock`` on ``<state_dir>/lock``.

Two daemons on one directory would both send the queue upstream and both write the ledger.
The lock is taken before any store opens and released when the process ends (the kernel
drops it even after kill -9, so a stale file never blocks a restart). The file holds the
holder's pid, which the refusal names.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import TYPE_CHECKING

from agent_sre_daemon.stores.errors import StateDirLockedError, StoreStartError

if TYPE_CHECKING:
    from pathlib import Path

LOCK_FILE = "lock"


class StateDirLock:
    """The held lock; :meth:`release` (or the process ending) gives it up."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def lock_state_dir(state_dir: Path) -> StateDirLock:
    """Takes ``<state_dir>/lock`` (creating the directory) and writes our pid into it.

    Raises:
        StateDirLockedError: another process holds it (its pid in the message).
        StoreStartError: the directory or the file cannot be created.
    """
    path = state_dir / LOCK_FILE
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreStartError(f"cannot create the state_dir lock {path}: {exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = _read_pid(fd)
        os.close(fd)
        who = f"process {holder}" if holder is not None else "another process"
        raise StateDirLockedError(
            f"state_dir {state_dir} is in use by {who} (lock {path}); stop that daemon or "
            f"give this one another state_dir",
            holder,
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return StateDirLock(path, fd)


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        return None
