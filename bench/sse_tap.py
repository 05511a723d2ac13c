"""The stream tap's cost against the stream's size: a well-formed stream (events of ~200
bytes) and one without blank lines (one endless event), each at 1x and 8x the size.

Linear parsing shows ~8x time for 8x bytes in both; the old tap (buffer + chunk, search
from the start) was quadratic on the second. Figures are printed, never asserted:

    python bench/sse_tap.py
"""

from __future__ import annotations

import time

from agent_sre.gateway.plan import CallPlan
from agent_sre.gateway.sse import StreamTap

CHUNK = 1024


def run(stream: bytes, rewrite: bool) -> float:
    plan = CallPlan("openai", "openai", "chat", model="gpt-4o-mini", strip_usage=rewrite)
    tap = StreamTap(plan)
    started = time.perf_counter()
    for start in range(0, len(stream), CHUNK):
        tap.feed(stream[start : start + CHUNK])
    tap.finish()
    return time.perf_counter() - started


def main() -> None:
    event = b'data: {"choices":[{"index":0,"delta":{"content":"hello world"}}]}\n\n'
    base = 2 * 1024 * 1024
    for name, unit in (("events", event), ("no blank lines", b"data: xxxxxxxxxxxxxxx\n")):
        for rewrite in (False, True):
            small = run(unit * (base // len(unit)), rewrite)
            large = run(unit * (8 * base // len(unit)), rewrite)
            print(
                f"{name:15} rewrite={rewrite!s:5}  2 MiB {small * 1000:7.1f} ms   "
                f"16 MiB {large * 1000:7.1f} ms   ratio {large / small:4.1f}x (linear: ~8x)"
            )


if __name__ == "__main__":
    main()
