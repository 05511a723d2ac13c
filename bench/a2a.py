"""What an A2A hand-off through the proxy costs, and what the ``a2a`` route's stages cost an
OpenAI call they do not concern.

Two figures, each against a baseline measured in the same run:

1. **A2A added latency**: a stand-in A2A agent (aiohttp in its own process, answering
   ``SendMessage`` with a completed task, as the SDK's server does) called directly and
   through this checkout's daemon (shipped configuration plus one ``api: a2a`` route), with
   an OpenAI call to the stand-in provider direct and through the same daemon for scale,
   all four interleaved call by call: p50/p99 of each and what the proxy added.
2. **The OpenAI call it does not concern**: ``bench/proxy.py``'s load (a chat completion to
   the stand-in provider) through this checkout's daemon, which has the two delegation
   stages in every call's chain, and through ``--before DIR`` (the commit before them), in
   rounds that alternate which goes first: added latency and CPU per call of each (median
   of the rounds), and their ratio.

    .venv/bin/python bench/a2a.py [--requests 1000] [--rounds 3] [--before /work/wt-before-a2a]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
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


async def serve_agent() -> None:
    """The stand-in A2A agent (its own process, as the stand-in provider is): prints its URL."""
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
    print(f"http://{host}:{port}", flush=True)
    await asyncio.Event().wait()


def start_agent() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve-agent"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def a2a_latency(args: argparse.Namespace) -> None:
    """A hand-off direct and through the daemon, and an OpenAI call direct and through the
    same daemon for scale, fully interleaved (one of each in turn)."""
    import aiohttp

    agent, agent_url = start_agent()
    provider, provider_url = bench_proxy.start_provider()
    import yaml

    shipped = yaml.safe_load((ROOT / "config/agent-sre.yaml").read_text())
    routes: list[dict[str, Any]] = list(shipped["proxy"]["routes"])
    routes.append({"name": "agent", "prefix": "/agent", "upstream": agent_url, "api": "a2a"})
    daemon = bench_proxy.start_daemon(
        "a2a", ROOT, sys.executable, provider_url, {"proxy": {"routes": routes}}, False
    )
    proxy = daemon.url.rsplit("/openai", 1)[0]
    calls = {
        "a2a direct": (agent_url + "/", json.dumps(HANDOFF).encode()),
        "a2a proxied": (proxy + "/agent/", json.dumps(HANDOFF).encode()),
        "openai direct": (
            provider_url + "/v1/chat/completions",
            json.dumps(bench_proxy.BODY).encode(),
        ),
        "openai proxied": (
            daemon.url + "/v1/chat/completions",
            json.dumps(bench_proxy.BODY).encode(),
        ),
    }
    headers = {**bench_proxy.HEADERS, "Content-Type": "application/json"}
    latencies: dict[str, list[float]] = {name: [] for name in calls}
    try:
        async with aiohttp.ClientSession() as session:

            async def one(url: str, body: bytes) -> float:
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    data = await response.read()
                    if response.status != 200 or b'"error"' in data:
                        raise RuntimeError(f"{url}: {response.status} {data[:200]!r}")
                return time.perf_counter() - started

            names = list(calls)
            for index in range(200):  # warm-up
                await one(*calls[names[index % len(names)]])
            for index in range(args.requests * args.rounds):
                for name in names[index % len(names) :] + names[: index % len(names)]:
                    latencies[name].append(await one(*calls[name]))
        figures = {name: (pct(v, 0.5), pct(v, 0.99)) for name, v in latencies.items()}
        for kind in ("a2a", "openai"):
            (d50, d99), (p50, p99) = figures[f"{kind} direct"], figures[f"{kind} proxied"]
            print(
                f"{kind:<6}: direct p50 {d50 * 1e3:.2f} p99 {d99 * 1e3:.2f} ms | through the "
                f"proxy p50 {p50 * 1e3:.2f} p99 {p99 * 1e3:.2f} ms | added p50 "
                f"{(p50 - d50) * 1e3:.2f} p99 {(p99 - d99) * 1e3:.2f} ms",
                flush=True,
            )
        a2a_added = figures["a2a proxied"][0] - figures["a2a direct"][0]
        llm_added = figures["openai proxied"][0] - figures["openai direct"][0]
        print(f"A2A hand-off / OpenAI call, added p50: {a2a_added / llm_added:.2f}", flush=True)
    finally:
        daemon.process.terminate()
        daemon.process.wait(30)
        provider.kill()
        agent.kill()


async def openai_cost(args: argparse.Namespace) -> None:
    """Fully interleaved: request i goes to the provider directly, then through each daemon
    (the order turning each time), so the machine's drift falls on all three alike; each
    daemon's CPU is read over the same window (it is idle while the others are called)."""
    import aiohttp

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
    body = json.dumps(bench_proxy.BODY).encode()
    headers = {**bench_proxy.HEADERS, "Content-Type": "application/json"}
    targets = {"direct": provider_url, **{name: d.url for name, d in daemons.items()}}
    latencies: dict[str, list[float]] = {name: [] for name in targets}
    total = args.requests * args.rounds
    try:
        async with aiohttp.ClientSession() as session:

            async def one(url: str) -> float:
                started = time.perf_counter()
                path = url + "/v1/chat/completions"
                async with session.post(path, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{url}: HTTP {response.status}")
                return time.perf_counter() - started

            names = list(targets)
            for index in range(200):  # warm-up
                await one(targets[names[index % len(names)]])
            cpu_before = {name: bench_proxy.thread_cpu(d.pid) for name, d in daemons.items()}
            for index in range(total):
                turn = names[index % len(names) :] + names[: index % len(names)]
                for name in turn:
                    latencies[name].append(await one(targets[name]))
            cpu_after = {name: bench_proxy.thread_cpu(d.pid) for name, d in daemons.items()}
        d50, d99 = pct(latencies["direct"], 0.5), pct(latencies["direct"], 0.99)
        rows = {}
        for name in daemons:
            cpu = sum(cpu_after[name][t] - cpu_before[name].get(t, 0.0) for t in cpu_after[name])
            added50 = pct(latencies[name], 0.5) - d50
            added99 = pct(latencies[name], 0.99) - d99
            rows[name] = (added50, added99, cpu / total * 1e6)
            print(
                f"OpenAI chat, {name:<10}: added p50 {added50 * 1e3:.3f} ms, p99 "
                f"{added99 * 1e3:.3f} ms, daemon CPU {cpu / total * 1e6:.0f} µs/call "
                f"({total} calls, interleaved with the other daemon and the direct calls)",
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
    parser.add_argument("--no-a2a", action="store_true", help="only the OpenAI comparison")
    parser.add_argument("--serve-agent", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_agent:
        asyncio.run(serve_agent())
        return
    if not args.no_a2a:
        asyncio.run(a2a_latency(args))
    if args.before:
        asyncio.run(openai_cost(args))


if __name__ == "__main__":
    main()
