"""Proxy overhead: the same load sent directly to the stand-in provider and through the proxy.

Prints, for each scenario (sequential, fixed concurrency; non-streaming and streaming):
latency p50/p99 direct and proxied, the added latency at p50/p99, requests per second and
their ratio, time to first chunk added (streams), and the proxy's CPU time per request.
With ``--chaos``, a second agent-sre proxy runs the same load with the chaos stage in its
chain and three experiments running that target other agents: every call is untargeted, so
the figure is the fault stage's own cost (goal: within noise of the proxy without chaos).
With ``--litellm BIN`` (the ``litellm`` command of a separate venv; ``make bench-peers``
makes one), LiteLLM's proxy runs the same load against the same stand-in, side by side.

Every server runs in its own process (provider, proxy, LiteLLM) so the load generator's CPU
is not counted against them. Figures are printed, never asserted.

    .venv/bin/python bench/proxy.py [--requests 2000] [--concurrency 1,32] [--rate 500]
                                    [--chaos] [--litellm BIN]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parents[1]
BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Say hello"}],
    "max_tokens": 16,
}
HEADERS = {"Authorization": "Bearer sk-bench", "X-Agent-Id": "bench"}


@dataclass
class Result:
    latencies: list[float]
    ttfts: list[float]
    seconds: float
    cpu: float

    def pct(self, values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(args: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("http"):
        process.kill()
        raise RuntimeError(f"{args[0]} did not start: {line!r}")
    return process, line


CHAOS_EXPERIMENTS = [
    {
        "name": f"bench-{index}",
        "targets": {"routes": ["openai"], "agents": [f"someone-else-{index}"], "share": 0.5},
        "faults": [{"type": "error", "probability": 0.5}, {"type": "latency", "delay": "1s"}],
        "duration": "1h",
    }
    for index in range(3)
]
"""Running while the chaos proxy is measured; none targets the load's agent (``bench``)."""


async def serve_proxy(upstream: str, chaos: bool = False) -> None:
    """Child mode: a ProxyServer with one budget, on uvloop, printing its address; with
    ``chaos``, the chaos stage too, with experiments running that target other agents."""
    from prometheus_client import CollectorRegistry

    from agent_sre.config import Config
    from agent_sre_daemon.clock import SYSTEM_CLOCK
    from agent_sre_daemon.component import NodeContext
    from agent_sre_daemon.proxy.server import ProxyServer
    from agent_sre_daemon.signals import SignalBus

    config = Config.model_validate(
        {
            "node": {"name": "bench"},
            "state_dir": tempfile.mkdtemp(),
            "proxy": {
                "endpoint": "127.0.0.1:0",
                "routes": [
                    {"name": "openai", "prefix": "/openai", "upstream": upstream, "api": "openai"}
                ],
            },
            "budgets": {"budgets": [{"name": "bench", "scope": "agent", "limit_usd": 1e9}]},
            "chaos": {"enabled": chaos, "experiments": CHAOS_EXPERIMENTS if chaos else []},
        }
    )

    class Sink:
        """Counts spans where the node's pipeline would take them."""

        spans = 0

        def export_proxy_call(self, request: object) -> None:
            self.spans += 1

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
    if chaos:
        from agent_sre_daemon.chaos.runtime import ChaosRuntime

        runtime = ChaosRuntime(context)
        context.stages = runtime.proxy_stages()
        await runtime.start()
        for experiment in CHAOS_EXPERIMENTS:
            runtime.start_experiment(str(experiment["name"]))
    server = ProxyServer(context)
    address = (await server.start())["proxy"]
    print(f"http://{address}/openai", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


async def load(
    url: str, stream: bool, total: int, concurrency: int, pid: int, rate: float = 0.0
) -> Result:
    """Closed loop with ``concurrency`` workers, or open loop at ``rate`` requests/s."""
    body = json.dumps({**BODY, "stream": stream}).encode()
    headers = {**HEADERS, "Content-Type": "application/json"}
    latencies: list[float] = []
    ttfts: list[float] = []
    remaining = total
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            started = time.perf_counter()
            async with session.post(
                url + "/v1/chat/completions", data=body, headers=headers
            ) as response:
                if stream:
                    first = True
                    async for _ in response.content.iter_any():
                        if first:
                            ttfts.append(time.perf_counter() - started)
                            first = False
                else:
                    await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{url}: HTTP {response.status}")
            latencies.append(time.perf_counter() - started)

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await one()

        for _ in range(min(50, total)):  # warm-up: connections, caches
            await one()
        latencies.clear()
        ttfts.clear()
        process = psutil.Process(pid)
        cpu_before = sum(process.cpu_times()[:2])
        started = time.perf_counter()
        if rate > 0:
            tasks = []
            for index in range(total):
                delay = started + index / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.ensure_future(one()))
            await asyncio.gather(*tasks)
        else:
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = sum(process.cpu_times()[:2]) - cpu_before
    return Result(latencies, ttfts, elapsed, cpu)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.2f}"


def report(name: str, direct: Result, proxied: Result, label: str) -> None:
    d50, d99 = direct.pct(direct.latencies, 0.5), direct.pct(direct.latencies, 0.99)
    p50, p99 = proxied.pct(proxied.latencies, 0.5), proxied.pct(proxied.latencies, 0.99)
    line = (
        f"{name:<28} direct p50 {ms(d50)} p99 {ms(d99)} ms | {label:<8} p50 {ms(p50)} "
        f"p99 {ms(p99)} ms | added p50 {ms(p50 - d50)} p99 {ms(p99 - d99)} ms | "
        f"req/s {direct.rps:7.0f} -> {proxied.rps:7.0f} ({proxied.rps / direct.rps:4.2f}x)"
        f" | {label} CPU {proxied.cpu / len(proxied.latencies) * 1e6:6.0f} us/req"
    )
    if direct.ttfts and proxied.ttfts:
        added = statistics.median(proxied.ttfts) - statistics.median(direct.ttfts)
        line += f" | TTFT added p50 {ms(added)} ms"
    print(line, flush=True)


def start_litellm(binary: str, upstream: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    config = Path(tempfile.mkdtemp()) / "litellm.yaml"
    config.write_text(
        "model_list:\n  - model_name: gpt-4o-mini\n    litellm_params:\n"
        f"      model: openai/gpt-4o-mini\n      api_base: {upstream}/v1\n"
        "      api_key: sk-bench\n"
    )
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_MASTER_KEY": os.environ.get("LITELLM_MASTER_KEY", "sk-bench"),
    }
    process = subprocess.Popen(
        [
            binary,
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("litellm did not start")


async def run(args: argparse.Namespace) -> None:
    provider, upstream = spawn(
        [sys.executable, str(ROOT / "tests/fakes/provider.py"), "--port", "0"]
    )
    proxy, proxied_url = spawn([sys.executable, __file__, "--serve-proxy", upstream])
    peers = [("agent-sre", proxy, proxied_url)]
    if args.chaos:
        # -P: bench/queue.py must not shadow the standard library's (thread pools use it)
        isolated = ["-P"] if sys.version_info >= (3, 11) else []
        chaos, chaos_url = spawn(
            [sys.executable, *isolated, __file__, "--serve-proxy", upstream, "--chaos"]
        )
        peers.append(("+chaos", chaos, chaos_url))
    litellm = None
    if args.litellm:
        litellm, litellm_url = start_litellm(args.litellm, upstream)
        peers.append(("litellm", litellm, litellm_url))
    print(
        f"# {os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
        f"{args.requests} requests per scenario",
        flush=True,
    )
    scenarios = [(c, 0.0) for c in args.concurrency] + [(0, r) for r in args.rate]
    try:
        for concurrency, rate in scenarios:
            for stream in (False, True):
                kind = "stream" if stream else "json"
                name = f"{kind} {f'{rate:g} req/s' if rate else f'c={concurrency}'}"
                direct = await load(
                    upstream, stream, args.requests, concurrency, provider.pid, rate
                )
                for label, process, url in peers:
                    result = await load(url, stream, args.requests, concurrency, process.pid, rate)
                    report(name, direct, result, label)
    finally:
        for _, child, _ in peers[1:]:
            child.terminate()
            child.wait(timeout=10)
        for child in (proxy, provider):
            if child is not None:
                child.terminate()
                child.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument(
        "--concurrency", type=lambda v: [int(x) for x in v.split(",")], default=[1, 32]
    )
    parser.add_argument(
        "--rate",
        type=lambda v: [float(x) for x in v.split(",")],
        default=[500.0],
        help="open-loop scenarios, requests per second",
    )
    parser.add_argument("--litellm", help="path to a litellm command (separate venv)")
    parser.add_argument(
        "--chaos", action="store_true", help="also measure the proxy with the chaos stage"
    )
    parser.add_argument("--serve-proxy", help=argparse.SUPPRESS)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if args.serve_proxy:
        sys.path.insert(0, str(ROOT / "src"))
        sys.path.insert(0, str(ROOT / "daemon"))
        asyncio.run(serve_proxy(args.serve_proxy, args.chaos))
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
