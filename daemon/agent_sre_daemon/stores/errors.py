"""What the stores raise: storage failures the daemon survives, and refusals to start."""

from __future__ import annotations


class StorageError(Exception):
    """A store could not read or write its file (disk full, I/O error, read-only file
    system). Retryable: the daemon refuses new work with UNAVAILABLE / 503 and keeps going."""


class StoreStartError(Exception):
    """The daemon cannot start on this ``state_dir``; the message says why and what to do."""


class StateDirLockedError(StoreStartError):
    """Another daemon holds the ``state_dir`` lock."""

    def __init__(self, message: str, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid
