"""How long a Prometheus scrape holds the daemon's event loop with many SLO instances (the SLO
families are computed per scrape), against an older checkout (``--before DIR``) run the same
way in the same window.

Per checkout and per instance count (``--instances``, default 200 and 2,000: one SLO labelled
by ``agent.id``, one task span per agent), a real daemon (``bench/process_metrics.py``'s) is
scraped in a loop by one thread while another asks ``/healthz`` on the same listener every
few milliseconds: what ``/healthz`` waits beyond its time at rest is the time the loop was
held by the scrape. Printed per daemon: the scrape's p50 as the scraper sees it, the daemon's
CPU per scrape, ``/healthz`` p50/p99/max during scrapes (and at rest), and the ratios against
the before checkout. Figures are printed, never asserted.

    .venv/bin/python bench/slo_scrape.py --before /work/wt-before-inert
        [--instances 200 2000] [--scrapes 60] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from process_metrics import Daemon  # noqa: E402


def healthz_ms(daemon: Daemon) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(f"http://{daemon.addresses['metrics']}/healthz") as response:
        response.read()
    return (time.perf_counter() - started) * 1000


def probe(daemon: Daemon, stop: threading.Event, out: list[float]) -> None:
    while not stop.is_set():
        out.append(healthz_ms(daemon))
        time.sleep(0.002)


def measure(daemon: Daemon, scrapes: int) -> dict[str, Any]:
    rest = sorted(healthz_ms(daemon) for _ in range(100))
    waits: list[float] = []
    stop = threading.Event()
    prober = threading.Thread(target=probe, args=(daemon, stop, waits))
    cpu_before = daemon.cpu()
    prober.start()
    latencies = []
    for _ in range(scrapes):
        started = time.perf_counter()
        daemon.scrape()
        latencies.append((time.perf_counter() - started) * 1000)
    stop.set()
    prober.join()
    cpu = (daemon.cpu() - cpu_before) / scrapes * 1000  # the probe's share included, both alike
    waits.sort()
    latencies.sort()
    return {
        "scrape_p50": latencies[len(latencies) // 2],
        "cpu": cpu,
        "rest_p50": rest[len(rest) // 2],
        "p50": waits[len(waits) // 2],
        "p99": waits[int(len(waits) * 0.99)],
        "max": waits[-1],
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="older checkout")
    parser.add_argument("--before-python", default=sys.executable)
    parser.add_argument("--instances", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--scrapes", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    for instances in args.instances:
        daemons = [
            Daemon("this", ROOT, sys.executable, instances),
            Daemon("before", args.before.resolve(), args.before_python, instances),
        ]
        results: dict[str, list[dict[str, Any]]] = {d.name: [] for d in daemons}
        try:
            for _ in range(args.rounds):
                for daemon in daemons:
                    results[daemon.name].append(measure(daemon, args.scrapes))
        finally:
            for daemon in daemons:
                daemon.stop()

        def median(name: str, key: str, results: dict[str, Any] = results) -> float:
            return statistics.median(r[key] for r in results[name])

        print(f"\n{instances} SLO instances, {args.rounds} rounds x {args.scrapes} scrapes")
        keys = ("scrape_p50", "cpu", "rest_p50", "p50", "p99", "max")
        print(
            f"{'daemon':8} {'scrape ms':>10} {'CPU ms/scrape':>14} {'healthz at rest':>16}"
            f" {'healthz p50':>12} {'p99':>8} {'max':>8}   (ms, during scrapes)"
        )
        for name in results:
            row = [median(name, key) for key in keys]
            print(
                f"{name:8} {row[0]:10.1f} {row[1]:14.1f} {row[2]:16.2f} {row[3]:12.2f}"
                f" {row[4]:8.1f} {row[5]:8.1f}"
            )
        ratios = "  ".join(
            f"{key} {median('this', key) / median('before', key):.2f}x"
            for key in ("scrape_p50", "cpu", "p99", "max")
        )
        print(f"this / before: {ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
