"""How long a small proxied call waits while the proxy parses one large JSON body.

Two proxies run side by side (each in its own process, uvloop): ``inline`` parses every
body on the event loop (the behaviour before ``PARSE_OFF_LOOP_BYTES``), ``thread`` parses
bodies above 1 MiB on a worker thread. Small calls go to the stand-in provider; large calls
to a sink upstream that answers without parsing (a parsing upstream would compete for the
CPUs). For each proxy a client sends small chat calls back to back, first alone (the
baseline), then while another client sends one large chat call (``--mib`` of JSON;
``--shape many``: 1 KiB messages, as an agent's long conversation; ``one``: one huge
message). Printed, medians over ``--rounds``: the small calls' p50 alone; their worst
latency during the large call, also as a ratio to that p50; and the proxy's event loop lag
(how late a 1 ms timer in the proxy process ran at worst) alone and during the large call.
Figures are printed, never asserted.

    .venv/bin/python bench/big_body.py [--mib 60] [--rounds 5] [--shape many,one]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
SMALL = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
).encode()
HEADERS = {"Content-Type": "application/json", "X-Agent-Id": "bench"}
COMPLETION = json.dumps(
    {
        "id": "chatcmpl-sink",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
).encode()


def big_body(mib: int, shape: str) -> bytes:
    size = mib * 1024 * 1024
    if shape == "one":
        messages = [{"role": "user", "content": "x" * size}]
    else:
        filler = "lorem ipsum " * 85  # ~1 KiB a message
        messages = [{"role": "user", "content": filler} for _ in range(size // len(filler))]
    return json.dumps({"model": "gpt-4o-mini", "messages": messages, "max_tokens": 8}).encode()


def spawn(args: list[str], lines: int = 1) -> tuple[subprocess.Popen[str], list[str]]:
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    out = [process.stdout.readline().strip() for _ in range(lines)]
    if not all(line.startswith("http") for line in out):
        process.kill()
        raise RuntimeError(f"{args} did not start: {out!r}")
    return process, out


async def small_calls(
    session: aiohttp.ClientSession, url: str, until: asyncio.Event | None, count: int = 0
) -> list[float]:
    """Small calls back to back: ``count`` of them, or until ``until`` is set."""
    latencies = []
    while (until is not None and not until.is_set()) or len(latencies) < count:
        started = time.perf_counter()
        async with session.post(url + "/v1/chat/completions", data=SMALL, headers=HEADERS) as r:
            await r.read()
            assert r.status == 200, r.status
        latencies.append(time.perf_counter() - started)
    return latencies


async def loop_lag(session: aiohttp.ClientSession, lag_url: str) -> float:
    """The proxy process's worst timer lateness since the last ask (it resets)."""
    async with session.get(lag_url) as r:
        return float(await r.text())


async def during_big(session: aiohttp.ClientSession, url: str, body: bytes) -> float:
    """The worst small-call latency while one large call is in flight."""
    done = asyncio.Event()

    async def big() -> None:
        async with aiohttp.ClientSession() as other:  # its own connection
            big_url = url.removesuffix("/openai") + "/big/v1/chat/completions"
            async with other.post(big_url, data=body, headers=HEADERS) as r:
                await r.read()
                assert r.status == 200, r.status
        done.set()

    task = asyncio.create_task(big())
    latencies = await small_calls(session, url, done)
    await task
    return max(latencies)


async def run(args: argparse.Namespace) -> None:
    provider, (upstream,) = spawn(
        [sys.executable, str(ROOT / "tests/fakes/provider.py"), "--port", "0"]
    )
    sink, (sink_url,) = spawn([sys.executable, __file__, "--serve-sink"])
    proxies = {
        mode: spawn(
            [sys.executable, __file__, "--serve-proxy", f"{upstream},{sink_url}", "--mode", mode],
            lines=2,
        )
        for mode in ("inline", "thread")
    }
    print(f"# {os.cpu_count()} CPUs, python {sys.version.split()[0]}, {args.rounds} rounds")
    print(
        "| body | parse | small call p50 alone | worst during the large call (x p50) "
        "| proxy loop lag alone | during the large call |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    try:
        for shape in args.shape:
            body = big_body(args.mib, shape)
            for mode, (_, (url, lag_url)) in proxies.items():
                async with aiohttp.ClientSession() as session:
                    await small_calls(session, url, None, 50)  # warm up
                    await loop_lag(session, lag_url)
                    alone = statistics.median(await small_calls(session, url, None, 300))
                    lag_alone = await loop_lag(session, lag_url)
                    worst, lags = [], []
                    for _ in range(args.rounds):
                        worst.append(await during_big(session, url, body))
                        lags.append(await loop_lag(session, lag_url))
                w, lag = statistics.median(worst), statistics.median(lags)
                print(
                    f"| {len(body) / 2**20:.0f} MiB, {shape} | {mode} | {alone * 1e3:.2f} ms "
                    f"| {w * 1e3:.1f} ms ({w / alone:.0f}x) | {lag_alone * 1e3:.1f} ms "
                    f"| {lag * 1e3:.1f} ms |",
                    flush=True,
                )
    finally:
        for process, _ in [*proxies.values(), (provider, []), (sink, [])]:
            process.terminate()
            process.wait(timeout=10)


async def serve_sink() -> None:
    """An upstream that reads each body whole and answers one fixed completion."""

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=COMPLETION, content_type="application/json")

    app = web.Application(client_max_size=128 * 1024 * 1024)
    app.router.add_post("/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()


async def serve_proxy(upstreams: str, mode: str) -> None:
    from prometheus_client import CollectorRegistry

    from agent_sre.config import Config
    from agent_sre_daemon.clock import SYSTEM_CLOCK
    from agent_sre_daemon.component import NodeContext
    from agent_sre_daemon.proxy import server as proxy_server
    from agent_sre_daemon.signals import SignalBus

    if mode == "inline":
        proxy_server.PARSE_OFF_LOOP_BYTES = sys.maxsize
    small, big = upstreams.split(",")
    config = Config.model_validate(
        {
            "node": {"name": "bench"},
            "state_dir": tempfile.mkdtemp(),
            "proxy": {
                "endpoint": "127.0.0.1:0",
                "routes": [
                    {"name": "openai", "prefix": "/openai", "upstream": small, "api": "openai"},
                    {"name": "big", "prefix": "/big", "upstream": big, "api": "openai"},
                ],
            },
        }
    )

    class Sink:
        def export_proxy_call(self, request: object, attrs: object = None) -> None:
            pass

    registry = CollectorRegistry()
    context = NodeContext(
        config=config,
        clock=SYSTEM_CLOCK,
        registry=registry,
        bus=SignalBus(registry),
        pipeline=Sink(),  # type: ignore[arg-type]
        environ=os.environ,
        node_name="bench",
    )
    logging.getLogger("agent_sre.proxy").setLevel(logging.ERROR)
    server = proxy_server.ProxyServer(context)
    address = (await server.start())["proxy"]

    worst = [0.0]

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            worst[0] = max(worst[0], now - last - 0.001)
            last = now

    async def lag(request: web.Request) -> web.Response:
        value, worst[0] = worst[0], 0.0
        return web.Response(text=repr(value))

    app = web.Application()
    app.router.add_get("/lag", lag)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    ticking = asyncio.create_task(ticker())
    print(f"http://{address}/openai", flush=True)
    print(f"http://127.0.0.1:{runner.addresses[0][1]}/lag", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        ticking.cancel()
        await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--shape", type=lambda v: v.split(","), default=["many", "one"])
    parser.add_argument("--serve-proxy", help=argparse.SUPPRESS)
    parser.add_argument("--serve-sink", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="thread", help=argparse.SUPPRESS)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if args.serve_sink:
        asyncio.run(serve_sink())
        return
    if args.serve_proxy:
        sys.path.insert(0, str(ROOT / "src"))
        sys.path.insert(0, str(ROOT / "daemon"))
        asyncio.run(serve_proxy(args.serve_proxy, args.mode))
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
