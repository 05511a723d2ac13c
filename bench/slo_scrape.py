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


def in_process(instances: int, repeat: int = 20) -> tuple[float, float, float]:
    """ms of CPU, in this process, of what holds the loop per scrape for the SLO families:
    before, collecting and encoding them (``generate_latest``, what ``collect()`` still does
    outside a scrape); now, copying the counts (``SLOEngine.gather``); and the off-loop part
    (reports and text from the copy), for ``instances`` instances of one labelled SLO."""
    from prometheus_client import CollectorRegistry, generate_latest

    from agent_sre.slo.engine import SLOEngine
    from agent_sre.slo.spec import SLOSpec
    from agent_sre.tracing.conventions import AgentSpanKind
    from agent_sre.tracing.view import AgentSpan
    from agent_sre_daemon.slo import metrics

    spec = {"name": "tasks", "target": 0.99, "sli": {"kind": "task_success"}}
    spec["labels"] = ["agent.id"]
    spec["max_label_sets"] = max(instances, 1000)
    engine = SLOEngine([SLOSpec.model_validate(spec)])
    now = time.time()
    for index in range(instances):
        engine.observe(
            AgentSpan(kind=AgentSpanKind.AGENT_TASK, explicit_kind=True, name="t",
                      trace_id=b"\1" * 16, span_id=b"\2" * 8, start_ns=0, end_ns=1,
                      is_error=index % 7 == 0, attrs={"agent.id": f"a{index}"}),
            now,
        )  # fmt: skip

    class Runtime:
        def __init__(self) -> None:
            self.engine = engine

        def now(self) -> float:
            return now

        def reports(self, at: float) -> list[Any]:
            return list(engine.reports(at))

    registry = CollectorRegistry()
    metrics.SLOMetrics(registry).runtime = lambda: Runtime()  # type: ignore[assignment,return-value]

    def best(run: Any) -> float:
        figures = []
        for _ in range(repeat):
            started = time.process_time()
            run()
            figures.append(time.process_time() - started)
        return min(figures) * 1000

    gathered = engine.gather(now)
    return (
        best(lambda: generate_latest(registry)),
        best(lambda: engine.gather(now)),
        best(lambda: metrics._text(gathered, now)),
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="older checkout")
    parser.add_argument("--before-python", default=sys.executable)
    parser.add_argument("--instances", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--scrapes", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    for instances in args.instances:
        held, copy, off = in_process(instances)
        print(
            f"in this process, {instances} SLO instances: the loop held {held:.1f} ms per "
            f"scrape before (collect + encode on the loop), {copy:.2f} ms now (copying the "
            f"counts; {held / copy:.0f}x less); the reports and text, {off:.1f} ms, in a thread"
        )
    for instances in args.instances:
        daemons = [
            Daemon("this", ROOT, sys.executable, instances, max_label_sets=instances),
            Daemon("before", args.before.resolve(), args.before_python, instances, instances),
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
