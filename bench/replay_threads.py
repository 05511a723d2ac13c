"""The trace buffer's CPU counted per thread, so the replay writer shows on its own.

Starts the daemon as ``bench/ingest.py --replay-only`` does (pinned to CPU 1, forwarding to
a null upstream), sends a steady 10,000 spans/s for ``--seconds`` (100-span requests of 10
traces never sent before), and prints each thread's CPU from ``/proc/<pid>/task/*/stat`` as
a share of one core, then the total; once with ``replay.enabled: false`` and once with it
on, ``--pairs`` times. The thread that appears only with the buffer on is its writer.

``python bench/replay_threads.py [--seconds 20] [--pairs 2]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import (  # noqa: E402
    CLIENT_CPU,
    SERVER_CPU,
    mixed_request,
    pin,
    pin_tree,
    start_daemon,
    start_helper,
    steady,
)


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of ``pid`` (by thread id)."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        found[tid] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def run(replay: bool, seconds: float) -> tuple[list[float], float]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        sink, sink_addr = start_helper("sink", workdir)
        pin(sink.pid, CLIENT_CPU)
        daemon, address = start_daemon(workdir, sink_addr, replay=replay)
        pin_tree(daemon.pid, SERVER_CPU)
        try:
            bodies = [mixed_request(100, 10) for _ in range(int(seconds * 100) + 1)]
            before, started = thread_cpu(daemon.pid), time.perf_counter()
            asyncio.run(steady(address, 10_000, 100, seconds, bodies=bodies))
            after, elapsed = thread_cpu(daemon.pid), time.perf_counter() - started
        finally:
            daemon.terminate()
            daemon.wait()
            sink.terminate()
            sink.wait()
    shares = sorted(
        ((cpu - before.get(tid, 0.0)) / elapsed for tid, cpu in after.items()), reverse=True
    )
    return [s for s in shares if s >= 0.001], sum(shares)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    print(f"per thread, steady 10,000 spans/s for {args.seconds:.0f}s, % of one core")
    for _ in range(args.pairs):
        totals = []
        for replay in (False, True):
            shares, total = run(replay, args.seconds)
            totals.append(total)
            threads = " ".join(f"{s * 100:.1f}" for s in shares)
            print(f"  replay {'on ' if replay else 'off'}: total {total * 100:5.1f}  ({threads})")
        print(f"  on/off: {totals[1] / totals[0]:.3f}x")


if __name__ == "__main__":
    main()
