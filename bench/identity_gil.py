"""A call's ids checked for credentials on the event loop while another thread wants the GIL.

Every RE2 call gives the GIL up; on a node whose trace buffer writer (or any thread) is
runnable, the loop then waits up to the switch interval (5 ms) to have it back. The identity
stage checks each call's ids (agent, task, team, version), which repeat call after call:
``Redactor.finds_recent`` keeps its answers for the last 4,096 distinct ids. This prints
the wall time a call of ``redacted_identity`` takes with the answers kept and with a fresh
RE2 scan each time (the baseline, ``Redactor.finds``), idle and with a thread spinning in
Python, in one run.

``python bench/identity_gil.py [--calls 2000] [--tasks 20]``
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from agent_sre.gateway.identity import CallIdentity, redacted_identity  # noqa: E402
from agent_sre.replay.redaction import Redactor  # noqa: E402


class Uncached(Redactor):
    """The baseline: every call scanned."""

    def finds_recent(self, data: bytes) -> bool:
        return self.finds(data)


def spin(stop: threading.Event) -> None:
    x = 0
    while not stop.is_set():
        x += 1


def per_call(redactor: Redactor, calls: int, tasks: int) -> float:
    ids = [
        CallIdentity("research-agent", f"task-{n % tasks:06d}", "search", "1.4.2")
        for n in range(calls)
    ]
    started = time.perf_counter()
    for identity in ids:
        redacted_identity(identity, redactor)
    return (time.perf_counter() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--tasks", type=int, default=20, help="distinct task ids in the run")
    args = parser.parse_args()
    print(f"µs a call of redacted_identity, {args.calls} calls over {args.tasks} task ids")
    for busy in (False, True):
        stop = threading.Event()
        spinner = threading.Thread(target=spin, args=(stop,))
        if busy:
            spinner.start()
        scanned = per_call(Uncached(), args.calls, args.tasks)
        kept = per_call(Redactor(), args.calls, args.tasks)
        stop.set()
        if busy:
            spinner.join()
        label = "another thread busy" if busy else "idle"
        print(
            f"  {label:20s} scanned each call {scanned * 1e6:9.1f}   answers kept"
            f" {kept * 1e6:7.1f}   ({scanned / kept:.0f}x)"
        )


if __name__ == "__main__":
    main()
