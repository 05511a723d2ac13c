"""Rollout state in ``state_dir``: JSON files, replaced atomically: the rollouts
(``rollouts.json``, small, written on every change) and the samples of their current steps
(``rollout-samples.json``, up to ``max_samples`` per variant, written at step checks)."""

from __future__ import annotations

import json
import os
import threading
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


# -- the current steps' samples: a file of their own, written off the event loop ----------

SAMPLES_FILE = "rollout-samples.json"
_writing = threading.Lock()


def load_samples(path: Path) -> dict[str, Any]:
    """``{rollout name: StepSamples record}``; empty when there is no file.

    Raises:
        StateFileError: unreadable, not JSON, or not this shape.
    """
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StateFileError(f"{path}: {exc}") from exc
    if (
        not isinstance(data, dict)
        or data.get("version") != VERSION
        or not isinstance(data.get("rollouts"), dict)
    ):
        raise StateFileError(f"{path}: not a rollout samples file of version {VERSION}")
    rollouts: dict[str, Any] = data["rollouts"]
    return rollouts


def save_samples(path: Path, records: dict[str, Any]) -> None:
    """Replaces the file atomically; one writer at a time (any thread).

    Raises:
        OSError: the file cannot be written.
    """
    with _writing:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"version": VERSION, "rollouts": records}))
        os.replace(tmp, path)
