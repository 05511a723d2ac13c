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
    return _read(path, {"rollouts": dict, "posted": list}, "rollout state") or {
        "rollouts": {},
        "posted": [],
    }


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
    data = _read(path, {"rollouts": dict}, "rollout samples")
    rollouts: dict[str, Any] = data["rollouts"] if data else {}
    return rollouts


def _read(path: Path, shape: dict[str, type], what: str) -> dict[str, Any] | None:
    """The JSON object in ``path`` if it is a ``what`` file of this version whose keys hold
    values of ``shape``'s types; None when there is no file.

    Raises:
        StateFileError: unreadable, not JSON, or not this shape.
    """
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StateFileError(f"{path}: {exc}") from exc
    if (
        not isinstance(data, dict)
        or data.get("version") != VERSION
        or not all(isinstance(data.get(key), kind) for key, kind in shape.items())
    ):
        raise StateFileError(f"{path}: not a {what} file of version {VERSION}")
    return data


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
