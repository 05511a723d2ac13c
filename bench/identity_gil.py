"""A call's ids and its span's strings checked for credentials on the event loop while
another thread wants the GIL.

Every RE2 call gives the GIL up; on a node whose trace buffer writer (or any thread) is
runnable, the loop then waits up to the switch interval (5 ms) to have it back. Per proxied
call the loop checks the call's ids (agent, task, team, version: ``redacted_identity``) and
its span's strings (name, model, route, response id...: ``redact_record`` joins them). Ids
repeat call after call: ``Redactor.finds_recent`` keeps its answers for the last 4,096
distinct ids. Short plain text (letters, digits, ``_.-/``, spaces) is told clean in Python
when no rule can match it (``_plain_and_clean``), without RE2. This prints the wall time of
each check both ways in one run — the baseline is an RE2 scan each time, as before — idle
and with a thread spinning in Python.

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
from agent_sre.replay import redaction  # noqa: E402
from agent_sre.replay.redaction import Redactor  # noqa: E402


class Scanning(Redactor):
    """The baseline: every check an RE2 scan."""

    def finds(self, data: bytes) -> bool:
        return redaction._scan(data)

    def finds_recent(self, data: bytes) -> bool:
        return self.finds(data)


def spin(stop: threading.Event) -> None:
    x = 0
    while not stop.is_set():
        x += 1


def ids_per_call(redactor: Redactor, calls: int, tasks: int) -> float:
    ids = [
        CallIdentity("research-agent", f"task-{n % tasks:06d}", "search", "1.4.2")
        for n in range(calls)
    ]
    started = time.perf_counter()
    for identity in ids:
        redacted_identity(identity, redactor)
    return (time.perf_counter() - started) / calls


def span_per_call(redactor: Redactor, calls: int) -> float:
    # what redact_record joins for an OpenAI call's span (a fresh response id each call)
    texts = [
        "\n".join(
            ("chat gpt-4o-mini", "", "openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18",
             f"chatcmpl-{n:08x}Zq81xWm", "research-agent", f"task-{n % 50:06d}", "chat",
             "127.0.0.1", "/v1/chat/completions")
        ).encode()
        for n in range(calls)
    ]  # fmt: skip
    started = time.perf_counter()
    for text in texts:
        redactor.finds(text)
    return (time.perf_counter() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--tasks", type=int, default=20, help="distinct task ids in the run")
    args = parser.parse_args()
    print(f"µs a check, {args.calls} calls ({args.tasks} task ids): RE2 each time -> now")
    for busy in (False, True):
        stop = threading.Event()
        spinner = threading.Thread(target=spin, args=(stop,))
        if busy:
            spinner.start()
        ids = ids_per_call(Scanning(), args.calls, args.tasks)
        ids_now = ids_per_call(Redactor(), args.calls, args.tasks)
        span = span_per_call(Scanning(), args.calls)
        span_now = span_per_call(Redactor(), args.calls)
        stop.set()
        if busy:
            spinner.join()
        label = "another thread busy" if busy else "idle"
        print(
            f"  {label:20s} ids {ids * 1e6:7.1f} -> {ids_now * 1e6:5.1f} ({ids / ids_now:.0f}x)"
            f"   span strings {span * 1e6:7.1f} -> {span_now * 1e6:5.1f}"
            f" ({span / span_now:.0f}x)"
        )


if __name__ == "__main__":
    main()
