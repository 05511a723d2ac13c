"""One process per state_dir (the two-daemon case is in tests/integration/test_stores.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from agent_sre_daemon.stores.errors import StateDirLockedError
from agent_sre_daemon.stores.lock import lock_state_dir

if TYPE_CHECKING:
    from pathlib import Path

HOLD = """
import sys, time
from pathlib import Path
from agent_sre_daemon.stores.lock import lock_state_dir
lock = lock_state_dir(Path(sys.argv[1]))
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    state = tmp_path / "state"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(state)], stdout=subprocess.PIPE, env=os.environ.copy()
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        with pytest.raises(StateDirLockedError, match=f"process {holder.pid}") as refused:
            lock_state_dir(state)
        assert refused.value.pid == holder.pid
    finally:
        holder.kill()
        holder.wait()
    lock = lock_state_dir(state)  # the kernel released it with the process: no stale lock
    assert (state / "lock").read_text() == f"{os.getpid()}\n"
    lock.release()
