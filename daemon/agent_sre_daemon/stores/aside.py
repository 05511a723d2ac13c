"""Saved state that cannot be used any more, set aside the one way for every store.

State the daemon saved must never stop it from starting. A file that is damaged, cut short
or of another schema version, and a saved item that names something the configuration no
longer has (a posted rollout whose route left, ...), are set aside: the file is moved to
``<file>.<why>-<UTC time>`` (kept for inspection) or the item written next to it, and the
store starts without it. Each is logged at once (a warning naming the file and what was
lost), and the node publishes a ``state_set_aside`` signal for it, counts it
(``agent_sre_state_set_aside_total{store}``) and lists it in ``/v1/status``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from agent_sre_daemon.clock import Clock

log = logging.getLogger("agent_sre.stores")

SIGNAL_TYPE = "state_set_aside"
KEPT_PER_FILE = 5
"""Set-aside copies kept per file and kind (the oldest are deleted)."""


@dataclass(frozen=True)
class SetAside:
    """One thing set aside: the store's file name, what it was, why, where it is kept."""

    store: str
    what: str
    reason: str
    kept: str = ""

    @property
    def message(self) -> str:
        where = f"; kept in {self.kept}" if self.kept else ""
        return f"{self.store}: {self.what} set aside ({self.reason}){where}"

    def to_dict(self) -> dict[str, str]:
        return {"store": self.store, "what": self.what, "reason": self.reason, "kept": self.kept}


_reported: list[SetAside] = []


def report(store: str, what: str, reason: str, kept: Path | str = "") -> SetAside:
    """Records and logs one thing set aside; the node announces it (signal, metric,
    status) after the start or reload it happened in."""
    entry = SetAside(store, what, reason, str(kept))
    log.warning("%s; the daemon goes on without it", entry.message)
    _reported.append(entry)
    return entry


def drain() -> list[SetAside]:
    """What was set aside since the last call."""
    out = list(_reported)
    _reported.clear()
    return out


def move_aside(path: Path, why: str, clock: Clock) -> Path:
    """Moves ``path`` (and a SQLite file's ``-wal`` and ``-shm``) to
    ``<name>.<why>-<UTC time>``, keeping the newest :data:`KEPT_PER_FILE` such copies.

    Raises:
        OSError: it could not be moved.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock.time()))
    kept = path.with_name(f"{path.name}.{why}-{stamp}")
    os.replace(path, kept)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, kept.with_name(kept.name + suffix))
    _prune(path, why)
    return kept


def keep_item(path: Path, why: str, name: str, item: Any, clock: Clock) -> Path:
    """Writes one saved item (JSON) next to ``path`` as ``<name>.<why>-<item>-<UTC time>``.

    Raises:
        OSError: it could not be written.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock.time()))
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]
    kept = path.with_name(f"{path.name}.{why}-{safe}-{stamp}")
    kept.write_text(json.dumps(item, indent=2) + "\n")
    return kept


def _prune(path: Path, why: str) -> None:
    copies = sorted(
        p for p in path.parent.glob(f"{path.name}.{why}-*") if not p.name.endswith(("-wal", "-shm"))
    )
    for old in copies[:-KEPT_PER_FILE]:
        for victim in (old, old.with_name(old.name + "-wal"), old.with_name(old.name + "-shm")):
            victim.unlink(missing_ok=True)
