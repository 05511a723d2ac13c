"""What issue 18's outcome and flood gates cost a call that no breaker, chaos experiment or
shadow rollout concerns: the real daemon of this checkout against the real daemon of
another checkout (main), same configuration, same stand-in provider, interleaved rounds.

Both daemons run a circuit breaker on another route, chaos experiments aimed at other
agents and a shadow rollout on another route; the load (agent ``bench``, route ``openai``)
is untouched by all three, so the figures are the gates' own cost on the call path
(``decided_by`` set and read, bounded circuit and incident maps, the bus's priority queue).

    .venv/bin/python bench/outcomes.py [--base /work/main] [--requests 1000] [--rounds 3]

Figures are printed (medians over rounds, and after/before ratios), never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.proxy import load, spawn  # noqa: E402
from tests.support.daemon import LOOPBACK_PORTS, DaemonProcess, merge  # noqa: E402

EXPERIMENTS = [
    {
        "name": f"elsewhere-{index}",
        "targets": {"agents": [f"someone-else-{index}"]},
        "faults": [{"type": "error", "status": 500}],
        "duration": "1h",
    }
    for index in range(3)
]


def config(upstream: str, state: Path) -> dict[str, object]:
    routes = [
        {"name": "openai", "prefix": "/openai", "upstream": upstream, "api": "openai"},
        {"name": "other", "prefix": "/other", "upstream": upstream, "api": "openai"},
    ]
    return merge(
        LOOPBACK_PORTS,
        {
            "node": {"name": "bench"},
            "state_dir": str(state),
            "admin": {"token": "tok"},
            "proxy": {"routes": routes, "correlation": {"hold": "0s"}},
            "budgets": {"budgets": [{"name": "bench", "scope": "agent", "limit_usd": 1e9}]},
            "chaos": {"enabled": True, "experiments": EXPERIMENTS},
            "incidents": {
                "circuit_breakers": [{"name": "others", "per": "agent", "routes": ["other"]}]
            },
            "rollouts": {
                "rollouts": [
                    {
                        "name": "shadowed",
                        "route": "other",
                        "vary": "model",
                        "baseline": "gpt-4o-mini",
                        "candidate": "gpt-4.1-mini",
                        "mode": "shadow",
                        "steps": [{"weight": 100, "duration": "1h"}],
                    }
                ]
            },
        },
    )


def start(name: str, upstream: str, pythonpath: str | None) -> DaemonProcess:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    env = {"PYTHONPATH": pythonpath} if pythonpath else {}
    daemon = DaemonProcess(workdir, config(upstream, workdir / "state"), env=env).start(60)
    for experiment in EXPERIMENTS:
        request = urllib.request.Request(
            daemon.url("admin", f"/v1/chaos/experiments/{experiment['name']}/start"),
            data=b"{}",
            method="POST",
            headers={"Authorization": "Bearer tok", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            json.load(response)
    return daemon


async def run(args: argparse.Namespace) -> None:
    provider, upstream = spawn(
        [sys.executable, str(ROOT / "tests/fakes/provider.py"), "--port", "0"]
    )
    base_path = f"{args.base}/src:{args.base}/daemon"
    daemons = {
        "before": start("before", upstream, base_path),
        "after": start("after", upstream, None),
    }
    figures: dict[tuple[str, int], dict[str, list[float]]] = {}
    try:
        print(f"# before: {args.base}; after: {ROOT}; {args.requests} requests, "
              f"{args.rounds} rounds interleaved", flush=True)  # fmt: skip
        for _ in range(args.rounds):
            for concurrency in args.concurrency:
                for label, daemon in daemons.items():
                    assert daemon.proc is not None
                    url = f"http://{daemon.addresses['proxy']}/openai"
                    result = await load(url, False, args.requests, concurrency, daemon.proc.pid)
                    row = figures.setdefault(
                        (label, concurrency), {"p50": [], "rps": [], "cpu": []}
                    )
                    row["p50"].append(result.pct(result.latencies, 0.5))
                    row["rps"].append(result.rps)
                    row["cpu"].append(result.cpu / len(result.latencies))
        for concurrency in args.concurrency:
            med = {
                label: {k: statistics.median(v) for k, v in figures[(label, concurrency)].items()}
                for label in daemons
            }
            before, after = med["before"], med["after"]
            print(
                f"json c={concurrency:<3} p50 {before['p50'] * 1e3:6.2f} -> "
                f"{after['p50'] * 1e3:6.2f} ms "
                f"({after['p50'] / before['p50']:4.2f}x) | req/s {before['rps']:7.0f} -> "
                f"{after['rps']:7.0f} ({after['rps'] / before['rps']:4.2f}x) | CPU/req "
                f"{before['cpu'] * 1e6:5.0f} -> {after['cpu'] * 1e6:5.0f} us "
                f"({after['cpu'] / before['cpu']:4.2f}x)",
                flush=True,
            )
    finally:
        for daemon in daemons.values():
            daemon.stop()
        provider.terminate()
        provider.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="/work/main", help="the checkout measured as before")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--concurrency", type=lambda v: [int(x) for x in v.split(",")], default=[1, 32]
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
