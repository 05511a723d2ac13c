"""What an A2A hand-off through the proxy costs, and what the ``a2a`` route's stages cost an
OpenAI call they do not concern.

Two figures, each against a baseline measured in the same run:

1. **A2A added latency**: a stand-in A2A agent (aiohttp, answering ``SendMessage`` with a
   completed task, as the SDK's server does) called directly and through this checkout's
   daemon (shipped configuration plus one ``api: a2a`` route), in alternating rounds:
   p50/p99 of each and the difference.
2. **The OpenAI call it does not concern**: ``bench/proxy.py``'s load (a chat completion to
   the stand-in provider) through this checkout's daemon, which has the two delegation
   stages in every call's chain, and through ``--before DIR`` (the commit before them), in
   alternating rounds: added latency and CPU per call of each, and their ratio.

    .venv/bin/python bench/a2a.py [--requests 1000] [--rounds 3] [--before /work/wt-before-a2a]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
import proxy as bench_proxy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HANDOFF = {
    "jsonrpc": "2.0",
    "id": "1",
    "method": "SendMessage",
    "params": {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}]}},
}
ANSWER = {
    "jsonrpc": "2.0",
    "id": "1",
    "result": {
        "task": {"id": "t-1", "contextId": "c-1", "status": {"state": "TASK_STATE_COMPLETED"}}
    },
}


async def start_agent() -> tuple[web.AppRunner, str]:
    body = json.dumps(ANSWER).encode()

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def handoffs(url: str, total: int) -> list[float]:
    import aiohttp

    body = json.dumps(HANDOFF).encode()
    headers = {"Content-Type": "application/json", "X-Agent-Id": "bench"}
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:
        for index in range(total + 50):
            started = time.perf_counter()
            async with session.post(url + "/", data=body, headers=headers) as response:
                data = await response.read()
                if response.status != 200 or b'"error"' in data:
                    raise RuntimeError(f"{url}: {response.status} {data[:200]!r}")
            if index >= 50:  # the first ones warm connections and caches
                latencies.append(time.perf_counter() - started)
    return latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def a2a_latency(args: argparse.Namespace) -> None:
    runner, agent_url = await start_agent()
    provider, provider_url = bench_proxy.start_provider()
    import yaml

    shipped = yaml.safe_load((ROOT / "config/agent-sre.yaml").read_text())
    routes: list[dict[str, Any]] = list(shipped["proxy"]["routes"])
    routes.append({"name": "agent", "prefix": "/agent", "upstream": agent_url, "api": "a2a"})
    daemon = bench_proxy.start_daemon(
        "a2a", ROOT, sys.executable, provider_url, {"proxy": {"routes": routes}}, False
    )
    proxied_url = daemon.url.rsplit("/openai", 1)[0] + "/agent"
    try:
        direct: list[float] = []
        proxied: list[float] = []
        for _ in range(args.rounds):
            direct += await handoffs(agent_url, args.requests)
            proxied += await handoffs(proxied_url, args.requests)
        d50, d99, p50, p99 = (
            pct(direct, 0.5),
            pct(direct, 0.99),
            pct(proxied, 0.5),
            pct(proxied, 0.99),
        )
        print(
            f"A2A SendMessage, {len(proxied)} hand-offs: direct p50 {d50 * 1e3:.2f} p99 "
            f"{d99 * 1e3:.2f} ms | through the proxy p50 {p50 * 1e3:.2f} p99 {p99 * 1e3:.2f} ms"
            f" | added p50 {(p50 - d50) * 1e3:.2f} p99 {(p99 - d99) * 1e3:.2f} ms",
            flush=True,
        )
    finally:
        daemon.process.terminate()
        daemon.process.wait(30)
        provider.kill()
        await runner.cleanup()


async def openai_cost(args: argparse.Namespace) -> None:
    before = Path(args.before)
    provider, provider_url = bench_proxy.start_provider()
    daemons = {
        "a2a-branch": bench_proxy.start_daemon(
            "a2a-branch", ROOT, sys.executable, provider_url, {}, False
        ),
        "before": bench_proxy.start_daemon(
            "before", before, sys.executable, provider_url, {}, False
        ),
    }
    figures: dict[str, list[tuple[float, float, float]]] = {name: [] for name in daemons}
    try:
        for _ in range(args.rounds):
            direct = await bench_proxy.load(provider_url, False, args.requests, 1, None)
            for name, daemon in daemons.items():
                result = await bench_proxy.load(daemon.url, False, args.requests, 1, daemon)
                calls = len(result.latencies)
                figures[name].append(
                    (
                        result.pct(0.5) - direct.pct(0.5),
                        result.pct(0.99) - direct.pct(0.99),
                        result.cpu / calls * 1e6,
                    )
                )
        rows = {}
        for name, values in figures.items():
            added50 = sorted(v[0] for v in values)[len(values) // 2]
            added99 = sorted(v[1] for v in values)[len(values) // 2]
            cpu = sorted(v[2] for v in values)[len(values) // 2]
            rows[name] = (added50, added99, cpu)
            print(
                f"OpenAI chat, {name:<10}: added p50 {added50 * 1e3:.3f} ms, p99 "
                f"{added99 * 1e3:.3f} ms, daemon CPU {cpu:.0f} µs/call (median of rounds)",
                flush=True,
            )
        branch, base = rows["a2a-branch"], rows["before"]
        print(
            f"ratio a2a-branch/before: added p50 {branch[0] / base[0]:.3f}, "
            f"CPU/call {branch[2] / base[2]:.3f}",
            flush=True,
        )
    finally:
        for daemon in daemons.values():
            daemon.process.terminate()
            daemon.process.wait(30)
        provider.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", default="", help="checkout of the commit before the route")
    args = parser.parse_args()
    asyncio.run(a2a_latency(args))
    if args.before:
        asyncio.run(openai_cost(args))


if __name__ == "__main__":
    main()
