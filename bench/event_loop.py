"""How long the daemon's event loop is held by heavy input (issue 18, class 7): the time
``/healthz`` takes while the daemon diffs two 3,000-span traces, and while the proxy relays
a 48 MiB server-sent event stream with no blank line, against ``/healthz`` on the same
daemon at rest (the baseline, measured in the same run). Also the time of the work itself.

Figures are printed, never asserted:

    python bench/event_loop.py [--rounds 3]

Run it on a commit before the change with ``PYTHONPATH=<old checkout>/src:<old>/daemon`` to
compare (the daemon is a child process and inherits it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.adversarial.test_event_loop_daemon import flat_trace  # noqa: E402
from tests.adversarial.upstreams import EndlessEventUpstream  # noqa: E402
from tests.support.daemon import LOOPBACK_PORTS, DaemonProcess, merge  # noqa: E402

MIB = 1024 * 1024


def healthz_ms(daemon: DaemonProcess) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(daemon.url("metrics", "/healthz"), timeout=120) as response:
        response.read()
    return (time.perf_counter() - started) * 1000


def probe(daemon: DaemonProcess, busy: threading.Thread) -> list[float]:
    """/healthz times (ms), asked every 20 ms while ``busy`` runs."""
    times = []
    while busy.is_alive():
        times.append(healthz_ms(daemon))
        time.sleep(0.02)
    return times


def start(workdir: Path, upstream_url: str) -> DaemonProcess:
    config = merge(LOOPBACK_PORTS, {
        "state_dir": str(workdir / "state"),
        "node": {"name": "bench"},
        "admin": {"endpoint": "127.0.0.1:0", "token": "tok"},
        "replay": {"enabled": True},
        "proxy": {"endpoint": "127.0.0.1:0", "routes": [
            {"name": "openai", "prefix": "/openai", "upstream": upstream_url, "api": "openai"}]},
    })  # fmt: skip
    return DaemonProcess(workdir, config).start(timeout=60)


def diff_case(daemon: DaemonProcess) -> tuple[float, list[float]]:
    ids = []
    for seed in (1, 2):
        request = flat_trace(3000, seed)
        ids.append(request.resource_spans[0].scope_spans[0].spans[0].trace_id.hex())
        posted = urllib.request.Request(
            daemon.url("otlp_http", "/v1/traces"), data=request.SerializeToString(),
            method="POST", headers={"Content-Type": "application/x-protobuf"},
        )  # fmt: skip
        urllib.request.urlopen(posted, timeout=60).read()
    took: list[float] = []

    def diff() -> None:
        started = time.perf_counter()
        url = daemon.url("admin", f"/v1/traces/diff?a={ids[0]}&b={ids[1]}")
        with urllib.request.urlopen(url, timeout=300) as response:
            json.load(response)
        took.append(time.perf_counter() - started)

    worker = threading.Thread(target=diff)
    worker.start()
    times = probe(daemon, worker)
    worker.join()
    return took[0], times


def sse_case(daemon: DaemonProcess) -> tuple[float, list[float]]:
    took: list[float] = []

    def stream() -> None:
        body = json.dumps({"model": "gpt-4o", "stream": True,
                           "messages": [{"role": "user", "content": "hi"}]}).encode()  # fmt: skip
        request = urllib.request.Request(
            daemon.url("proxy", "/openai/v1/chat/completions"), data=body, method="POST",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=600) as response:
            while response.read(MIB):
                pass
        took.append(time.perf_counter() - started)

    worker = threading.Thread(target=stream)
    worker.start()
    times = probe(daemon, worker)
    worker.join()
    return took[0], times


def summary(times: list[float]) -> str:
    if not times:
        return "no probe finished during the work"
    return (f"/healthz p50 {statistics.median(times):7.1f} ms  max {max(times):8.1f} ms "
            f"({len(times)} probes)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    upstream = EndlessEventUpstream(48 * MIB, pause=0.0).start()
    with tempfile.TemporaryDirectory() as tmp:
        daemon = start(Path(tmp), upstream.url)
        try:
            rest = [healthz_ms(daemon) for _ in range(50)]
            print(f"{'at rest (baseline)':34} {summary(rest)}")
            base = statistics.median(rest)
            for name, case in (("diff of two 3,000-span traces", diff_case),
                               ("48 MiB SSE, no blank line", sse_case)):  # fmt: skip
                for _ in range(args.rounds):
                    took, times = case(daemon)
                    worst = max(times) if times else float("nan")
                    print(f"{name:34} {summary(times)}  work {took:6.2f} s  "
                          f"max/baseline {worst / base:7.1f}x")  # fmt: skip
        finally:
            daemon.stop()
            upstream.stop()


if __name__ == "__main__":
    main()
