"""What the daemon's ``process_*``/``python_*`` figures cost a scrape of ``/metrics``, against
an older checkout (``--before DIR``, without them) run the same way in the same window.

Two real daemons (this checkout and ``--before``), each its own process with the same
configuration (the shipped one, listeners on port 0, one SLO with a per-agent label and
``--agents`` agents seen, so the exposition has the size of a busy node), scraped in turns
(``--rounds``) so the machine's drift falls on both alike. Per daemon it prints the scrape's
latency (p50/p99 as the scraper sees it), the daemon's CPU per scrape (from ``/proc``), the
exposition's size, and the ratio of each to the before checkout. In the same process it also
times the collector alone (``collect()`` of the process, GC and platform figures).

The collector runs only when ``/metrics`` is read: a proxied call or a received span never
reaches it. ``bench/proxy.py --before DIR`` measures proxied calls against the same older
checkout (see docs/grafana.md for the figures of one run). Figures are printed, never
asserted.

    .venv/bin/python bench/process_metrics.py --before /work/wt-before-grafana
        [--scrapes 300] [--rounds 3] [--agents 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


class Daemon:
    def __init__(self, name: str, checkout: Path, python: str, agents: int) -> None:
        self.name = name
        self.workdir = Path(tempfile.mkdtemp(prefix=f"bench-process-{name}-"))
        config = yaml.safe_load((checkout / "config" / "agent-sre.yaml").read_text())
        config["receivers"] = {
            "otlp": {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": "127.0.0.1:0"}}
        }
        config.setdefault("exporters", {})["prometheus"] = {"endpoint": "127.0.0.1:0"}
        config.setdefault("proxy", {})["endpoint"] = "127.0.0.1:0"
        config.setdefault("admin", {})["endpoint"] = "127.0.0.1:0"
        config["state_dir"] = str(self.workdir / "state")
        config["slos"] = [
            {
                "name": "tasks",
                "target": 0.99,
                "sli": {"kind": "task_success"},
                "labels": ["agent.id"],
            }
        ]
        (self.workdir / "agent-sre.yaml").write_text(yaml.safe_dump(config))
        ready = self.workdir / "ready.json"
        env = {**os.environ, "PYTHONPATH": f"{checkout / 'src'}:{checkout / 'daemon'}"}
        self.proc = subprocess.Popen(
            [
                python,
                "-m",
                "agent_sre_daemon.cli",
                "run",
                "--config",
                str(self.workdir / "agent-sre.yaml"),
                "--ready-file",
                str(ready),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "log").open("wb"),
        )
        deadline = time.monotonic() + 60
        while not ready.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"{name}: the daemon did not start; see {self.workdir}/log")
            time.sleep(0.1)
        time.sleep(0.2)
        self.addresses = json.loads(ready.read_text())
        self._seed(agents)

    def _seed(self, agents: int) -> None:
        """One task span per agent, so the SLO exports one instance per agent."""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        request = ExportTraceServiceRequest()
        scope = request.resource_spans.add().scope_spans.add()
        now = time.time_ns()
        for index in range(agents):
            span = scope.spans.add()
            span.trace_id, span.span_id = os.urandom(16), os.urandom(8)
            span.name, span.start_time_unix_nano, span.end_time_unix_nano = "t", now, now
            for key, value in (("agent.span.kind", "AGENT_TASK"), ("agent.id", f"a{index}")):
                kv = span.attributes.add()
                kv.key, kv.value.string_value = key, value
        post = urllib.request.Request(
            f"http://{self.addresses['otlp_http']}/v1/traces",
            data=request.SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
        )
        urllib.request.urlopen(post, timeout=30).close()
        time.sleep(2.5)  # an SLO evaluation tick

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def scrape(self) -> int:
        with urllib.request.urlopen(f"http://{self.addresses['metrics']}/metrics") as response:
            return len(response.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def measure(daemon: Daemon, scrapes: int) -> dict[str, Any]:
    latencies = []
    size = 0
    cpu_before = daemon.cpu()
    for _ in range(scrapes):
        started = time.perf_counter()
        size = daemon.scrape()
        latencies.append(time.perf_counter() - started)
    cpu = (daemon.cpu() - cpu_before) / scrapes
    latencies.sort()
    return {
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[int(len(latencies) * 0.99)],
        "cpu": cpu,
        "size": size,
    }


def in_process(repeat: int = 2000) -> tuple[float, float]:
    """CPU seconds of one ``generate_latest`` of a registry holding every component's metrics
    (as a fresh node's, no series yet), without and with the process figures."""
    from prometheus_client import CollectorRegistry, generate_latest

    from agent_sre_daemon.exporters.process import register_process_metrics
    from agent_sre_daemon.node import COMPONENT_TYPES

    figures = []
    for with_process in (False, True):
        registry = CollectorRegistry()
        for component in COMPONENT_TYPES:
            if component.__name__ != "MetricsServer":
                component.register_metrics(registry)
        if with_process:
            register_process_metrics(registry)
        generate_latest(registry)
        started = time.process_time()
        for _ in range(repeat):
            generate_latest(registry)
        figures.append((time.process_time() - started) / repeat)
    return figures[0], figures[1]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="older checkout")
    parser.add_argument("--before-python", default=sys.executable)
    parser.add_argument("--scrapes", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--agents", type=int, default=200)
    args = parser.parse_args(argv)
    without, with_process = in_process()
    print(
        f"in this process, CPU of one exposition of a fresh node's registry: "
        f"{without * 1e6:.0f} µs without the process figures, {with_process * 1e6:.0f} µs "
        f"with them ({with_process / without:.2f}x, +{(with_process - without) * 1e6:.0f} µs)"
    )
    daemons = [
        Daemon("this", ROOT, sys.executable, args.agents),
        Daemon("before", args.before.resolve(), args.before_python, args.agents),
    ]
    results: dict[str, list[dict[str, Any]]] = {d.name: [] for d in daemons}
    try:
        for _ in range(args.rounds):
            for daemon in daemons:
                results[daemon.name].append(measure(daemon, args.scrapes))
    finally:
        for daemon in daemons:
            daemon.stop()

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    print(f"{args.rounds} rounds x {args.scrapes} scrapes, {args.agents} SLO instances")
    print(f"{'daemon':8} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/scrape':>14} {'bytes':>8}")
    for name in results:
        print(
            f"{name:8} {median(name, 'p50') * 1e3:8.2f} {median(name, 'p99') * 1e3:8.2f} "
            f"{median(name, 'cpu') * 1e3:14.2f} {median(name, 'size'):8.0f}"
        )
    for key, label in (("p50", "p50"), ("p99", "p99"), ("cpu", "CPU"), ("size", "bytes")):
        print(f"ratio this/before {label}: {median('this', key) / median('before', key):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
