"""What ``process_open_fds`` costs a scrape as the daemon holds more connections: the time to
list ``/proc/self/fd`` (what prometheus-client's process collector does per scrape) and of the
whole process collector, with 0, 1,000, 10,000 (and more, up to the hard descriptor limit)
socket descriptors open in this process. Since the fix the daemon reads them in a worker
thread (``ProcessMetrics.render``); before, on the event loop. Figures are printed (best of
``--repeat``), never asserted.

    .venv/bin/python bench/open_fds.py [--counts 0 1000 10000 19000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import sys
import time
from typing import TYPE_CHECKING

from prometheus_client.process_collector import ProcessCollector

if TYPE_CHECKING:
    from collections.abc import Callable


def best_ms(run: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[0, 1000, 10000, 19000])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args(argv)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    collector = ProcessCollector(registry=None)
    held: list[socket.socket] = []
    print(f"{'open fds':>9} {'listdir ms':>11} {'collector ms':>13} {'µs/fd':>7}")
    for count in args.counts:
        if count + 64 > hard:
            print(f"{count:>9} skipped: the hard limit is {hard}")
            continue
        while len(held) < count:
            held.extend(socket.socketpair())
        fds = len(os.listdir("/proc/self/fd"))
        listing = best_ms(lambda: os.listdir("/proc/self/fd"), args.repeat)
        whole = best_ms(lambda: list(collector.collect()), args.repeat)
        print(f"{fds:>9} {listing:11.2f} {whole:13.2f} {listing * 1000 / fds:7.2f}")
    for one in held:
        one.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
