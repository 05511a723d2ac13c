"""Checks of a configuration against the machine it is about to run on: the files and
directories it names. ``agent-sre validate`` and ``agent-sre run`` both call
:func:`runtime_problems`, so ``validate`` refuses what ``run`` would refuse.

The core's loader does no I/O beyond reading the file; these checks do, so they live here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

    from agent_sre.config import Config

Location = tuple[str | int, ...]
PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"


def runtime_problems(config: Config) -> list[tuple[Location, str]]:
    """Every problem the daemon would meet on start, as ``(location, message)``."""
    return [
        *_state_dir_problems(config.state_dir),
        *_ca_file_problems(config.exporters.otlp.ca_file),
    ]


def _state_dir_problems(state_dir: str) -> Iterator[tuple[Location, str]]:
    loc: Location = ("state_dir",)
    path = Path(state_dir)
    for existing in (path, *path.parents):
        if not existing.exists():
            continue
        if not existing.is_dir():
            if existing == path:
                yield loc, f"{state_dir} exists and is not a directory"
            else:
                yield loc, f"{existing} is a file, so {state_dir} cannot be made under it"
        elif not os.access(existing, os.W_OK | os.X_OK):
            yield loc, f"{existing} is not writable by this user"
        return


def _ca_file_problems(ca_file: str) -> Iterator[tuple[Location, str]]:
    if not ca_file:
        return
    loc: Location = ("exporters", "otlp", "ca_file")
    try:
        data = Path(ca_file).read_bytes()
    except OSError as exc:
        yield loc, f"{ca_file}: cannot read: {exc.strerror or exc}"
        return
    if PEM_CERTIFICATE not in data:
        yield loc, f"{ca_file} holds no PEM certificate ({PEM_CERTIFICATE.decode()})"
