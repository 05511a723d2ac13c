"""What the status page costs proxied calls: nothing while no one looks, and how much while a
browser polls it; against the commit before it (``--before DIR``), in the same run.

Two daemons (this checkout, and ``--before``'s run with ``PYTHONPATH=DIR/src:DIR/daemon``),
each the real ``agent-sre run`` with the shipped defaults, one ``openai`` route to the
stand-in provider and one agent budget, started once and measured in alternating rounds so
the machine's drift falls on both alike. Per daemon and round:

- ``idle``: proxied chat completions at ``--concurrency`` with no one on the page;
- ``polled``: the same while a client replays the status page's own reads — the Overview's
  seven requests, the SLO page's three (with the burn-down) and the Budgets page's two — every
  ``--poll`` seconds (the page polls every 5 s; the default here is 5x faster, to be seen).
  On ``--before`` the routes the page added answer 404, as they did then.

Printed: the daemon's CPU time per proxied call (user + system of the whole process over the
round, so while polled it includes serving the page's reads: that is their cost to the
node; the steadiest figure on a shared machine), proxied calls per second and added latency
p50/p99 (against the stand-in called
directly in the same round), each as a ratio to ``before idle``, and the polling client's
own figures (requests, mean latency, bytes). Figures are printed, never asserted.

    .venv/bin/python bench/status_page.py --before /work/wt-before-statuspage [--requests 1500]
        [--concurrency 4] [--rounds 3] [--poll 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
PAGE_READS = [
    # Overview
    "/v1/status", "/v1/slos", "/v1/budgets", "/v1/incidents?state=open", "/v1/chaos",
    "/v1/rollouts", "/v1/agents?limit=1",
    # SLO page
    "/v1/slos/llm", "/v1/slos/llm/burndown",
    # Budgets page
    "/v1/budgets/bench?limit=50&offset=0&q=",
    # the page itself (once a load; counted in every poll here to be generous)
    "/",
]  # fmt: skip


def config(provider: str, state: Path) -> dict[str, Any]:
    return {
        "node": {"name": "bench"},
        "state_dir": str(state),
        "receivers": {"otlp": {"grpc": {"endpoint": "127.0.0.1:0"},
                               "http": {"endpoint": "127.0.0.1:0"}}},
        "exporters": {"prometheus": {"endpoint": "127.0.0.1:0"}},
        "admin": {"endpoint": "127.0.0.1:0"},
        "proxy": {"endpoint": "127.0.0.1:0", "routes": [
            {"name": "openai", "prefix": "/openai", "upstream": provider, "api": "openai"}]},
        "slos": [{"name": "llm", "target": 0.99, "window": "30d", "sli": {"kind": "llm_success"}}],
        "budgets": {"budgets": [{"name": "bench", "scope": "agent", "limit_usd": 1e9,
                                 "window": "day"}]},
    }  # fmt: skip


class Daemon:
    def __init__(self, name: str, checkout: Path | None, provider: str, workdir: Path) -> None:
        self.name = name
        workdir.mkdir(parents=True)
        path = workdir / "agent-sre.yaml"
        path.write_text(json.dumps(config(provider, workdir / "state")))
        ready = workdir / "ready.json"
        env = dict(os.environ)
        if checkout is not None:
            env["PYTHONPATH"] = f"{checkout / 'src'}:{checkout / 'daemon'}"
        self.log = (workdir / "daemon.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent_sre_daemon.cli", "run", "--config", str(path),
             "--ready-file", str(ready), "--log-level", "warning"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=workdir,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not ready.exists() or not ready.read_text().strip():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name}: daemon did not start: {workdir / 'daemon.log'}")
            time.sleep(0.1)
        self.addresses = json.loads(ready.read_text())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


async def calls(session: aiohttp.ClientSession, url: str, n: int, concurrency: int) -> list[float]:
    """Latencies (s) of ``n`` chat completions sent by ``concurrency`` workers."""
    latencies: list[float] = []
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            started = time.perf_counter()
            async with session.post(url, json=BODY, headers={"X-Agent-Id": "bench"}) as r:
                await r.read()
                assert r.status == 200, r.status
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


async def poller(session: aiohttp.ClientSession, admin: str, every: float,
                 stop: asyncio.Event, figures: dict[str, float]) -> None:  # fmt: skip
    while not stop.is_set():
        for path in PAGE_READS:
            started = time.perf_counter()
            async with session.get(f"http://{admin}{path}") as r:
                figures["bytes"] += len(await r.read())
            figures["requests"] += 1
            figures["seconds"] += time.perf_counter() - started
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


def cpu_seconds(pid: int) -> float:
    """The process's CPU time so far (user + system, all threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(daemon: Daemon, provider: str, args: argparse.Namespace, polled: bool
                  ) -> dict[str, float]:  # fmt: skip
    connector = aiohttp.TCPConnector(limit=args.concurrency + 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        proxied = f"http://{daemon.addresses['proxy']}/openai/v1/chat/completions"
        await calls(session, proxied, 100, args.concurrency)  # warm
        direct = await calls(session, f"{provider}/v1/chat/completions", args.requests // 3,
                             args.concurrency)  # fmt: skip
        stop = asyncio.Event()
        figures = {"requests": 0.0, "seconds": 0.0, "bytes": 0.0}
        polling = None
        if polled:
            polling = asyncio.create_task(poller(session, daemon.addresses["admin"], args.poll,
                                                 stop, figures))  # fmt: skip
        started, cpu = time.perf_counter(), cpu_seconds(daemon.proc.pid)
        latencies = await calls(session, proxied, args.requests, args.concurrency)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(daemon.proc.pid) - cpu
        stop.set()
        if polling is not None:
            await polling
    base50, base99 = pct(direct, 0.5), pct(direct, 0.99)
    return {
        "rps": len(latencies) / elapsed,
        "cpu_ms": cpu / len(latencies) * 1000,
        "p50": max(0.0, pct(latencies, 0.5) - base50) * 1000,
        "p99": max(0.0, pct(latencies, 0.99) - base99) * 1000,
        **{f"poll_{k}": v for k, v in figures.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--poll", type=float, default=1.0)
    args = parser.parse_args()
    fake = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fakes" / "provider.py"),
                             "--port", "0"], stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert fake.stdout is not None
    provider = fake.stdout.readline().strip()
    tmp = Path(tempfile.mkdtemp(prefix="bench-status-page-"))
    daemons = [Daemon("before", args.before, provider, tmp / "before"),
               Daemon("after", None, provider, tmp / "after")]  # fmt: skip
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    try:
        for round_ in range(args.rounds):
            for daemon in daemons if round_ % 2 == 0 else daemons[::-1]:
                for polled in (False, True):
                    key = (daemon.name, "polled" if polled else "idle")
                    figures = asyncio.run(measure(daemon, provider, args, polled))
                    results.setdefault(key, []).append(figures)
    finally:
        for daemon in daemons:
            daemon.stop()
        fake.terminate()
        fake.wait(10)

    def median(key: tuple[str, str], field: str) -> float:
        return statistics.median(r[field] for r in results[key])

    base = ("before", "idle")
    print(f"proxied chat completions, {args.requests} a round at concurrency"
          f" {args.concurrency}, {args.rounds} rounds (medians); page reads every"
          f" {args.poll:g}s while polled")  # fmt: skip
    print(f"{'':16} {'daemon CPU ms/call':>19} {'calls/s':>16} {'added p50 ms':>18}"
          f" {'added p99 ms':>18}"
          f" {'page reads':>11} {'read ms':>8} {'KiB/poll':>9}")  # fmt: skip
    for key in (("before", "idle"), ("after", "idle"), ("before", "polled"), ("after", "polled")):
        rps, p50, p99, cpu = (median(key, f) for f in ("rps", "p50", "p99", "cpu_ms"))
        reads = median(key, "poll_requests")
        mean_read = median(key, "poll_seconds") / reads * 1000 if reads else 0.0
        polls = reads / len(PAGE_READS) if reads else 0
        kib = median(key, "poll_bytes") / polls / 1024 if polls else 0.0
        print(f"{key[0] + ' ' + key[1]:16} {cpu:11.3f} ({cpu / median(base, 'cpu_ms'):4.2f}x)"
              f" {rps:9.0f} ({rps / median(base, 'rps'):4.2f}x)"
              f" {p50:10.3f} ({p50 / max(median(base, 'p50'), 1e-9):4.2f}x)"
              f" {p99:10.3f} ({p99 / max(median(base, 'p99'), 1e-9):4.2f}x)"
              f" {reads:11.0f} {mean_read:8.2f} {kib:9.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
