"""A reader that goes away early (``agent-sre ... | head``) ends any command quietly.

Each command runs as a real process writing into a real pipe whose reading end is already
closed (what ``head`` leaves behind once it has its lines), or read a little then closed, so
every write fails with EPIPE: the command exits 141 (as a process SIGPIPE ends) and prints no
traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent_sre_daemon.cli import exits

ROOT = Path(__file__).parents[3]
CLI = [sys.executable, "-m", "agent_sre_daemon.cli"]

COMMANDS = [
    ["k8s", "sidecar", "--agent-container", "agent"],
    ["schema"],
    ["validate", str(ROOT / "config" / "agent-sre.yaml")],
]


def run_into_closed_pipe(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte
    try:
        return subprocess.run(
            [*CLI, *args], stdout=write_end, stderr=subprocess.PIPE, timeout=60, check=False
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_closed_pipe_ends_the_command_quietly(args: list[str]) -> None:
    done = run_into_closed_pipe(args)
    assert done.stderr == b"", done.stderr.decode()
    assert done.returncode == exits.BROKEN_PIPE


@pytest.mark.parametrize("args", [["--help"], ["slo", "--help"]], ids=" ".join)
def test_help_into_a_closed_pipe_is_quiet(args: list[str]) -> None:
    """argparse prints help and exits 0 itself, dropping a failed write."""
    done = run_into_closed_pipe(args)
    assert done.stderr == b"", done.stderr.decode()
    assert done.returncode in (exits.OK, exits.BROKEN_PIPE)


def test_a_reader_that_stops_midway_ends_a_long_output_quietly() -> None:
    """``agent-sre schema | head -c 100``: the first bytes arrive, then the pipe closes while
    the command is still writing (the schema is larger than a pipe's buffer)."""
    proc = subprocess.Popen([*CLI, "schema"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    head = proc.stdout.read(100)
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(60) == exits.BROKEN_PIPE
    assert head.startswith(b"{") and stderr == b"", stderr.decode()


def test_a_reader_that_reads_everything_sees_success() -> None:
    done = subprocess.run([*CLI, "k8s", "sidecar", "--agent-container", "agent"],
                          capture_output=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == exits.OK and done.stdout and done.stderr == b""
