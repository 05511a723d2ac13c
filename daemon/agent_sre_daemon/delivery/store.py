"""Rollout state in ``state_dir``: one JSON file, replaced atomically."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

STATE_FILE = "rollouts.json"
VERSION = 1


class StateFileError(Exception):
    """The state file cannot be read (its path and what is wrong)."""


def load(path: Path) -> dict[str, Any]:
    """``{"rollouts": {name: {"spec": ..., "state": ...}}, "posted": [spec, ...]}``; empty
    when there is no file.

    Raises:
        StateFileError: unreadable, not JSON, or not this shape.
    """
    if not path.exists():
        return {"rollouts": {}, "posted": []}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StateFileError(f"{path}: {exc}") from exc
    if (
        not isinstance(data, dict)
        or data.get("version") != VERSION
        or not isinstance(data.get("rollouts"), dict)
        or not isinstance(data.get("posted"), list)
    ):
        raise StateFileError(f"{path}: not a rollout state file of version {VERSION}")
    return data


def save(path: Path, rollouts: dict[str, Any], posted: list[Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"version": VERSION, "rollouts": rollouts, "posted": posted}))
    os.replace(tmp, path)
