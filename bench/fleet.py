"""What the fleet costs: a proxied call and a received span with the fleet on and off (and on
the commit before it), and the memory and Redis bytes of 10,000 agents x 200 nodes.

Part 1 runs three real daemons side by side, interleaved rounds, same stand-in provider:
``before`` (the checkout ``--base``, no fleet engine), ``off`` (this checkout,
``fleet.enabled: false``) and ``on`` (this checkout, publishing to a real redis-server every
second). The load names 100 agents (the fleet's registry counts each). Figures: the
daemon's CPU per proxied call and per received span (``/proc``), and the call's p50.

Part 2 builds 200 node summaries in-process and writes them to a real redis-server:
``spread`` (10,000 agents, each on 2 of the 200 nodes: 100 agents a node, 10 SLOs with
traffic in every hour of 30 days) and ``worst`` (every node reporting the most it publishes,
10,000 agents). It prints the bytes of one summary, what Redis holds for all of them
(``INFO memory`` before and after), the time to decode and aggregate them, and the memory
that takes (tracemalloc peak, and what the view keeps).

    .venv/bin/python bench/fleet.py [--base /work/wt-before-fleet] [--rounds 3]
        [--calls 1500] [--span-requests 60] [--skip-load] [--skip-bounds]

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent_sre.fleet.summary import (  # noqa: E402
    AgentRow,
    AgentSLORow,
    NodeSummary,
    SLORow,
    decode,
    encode,
)
from agent_sre.fleet.view import build_view  # noqa: E402
from tests.support.daemon import LOOPBACK_PORTS, DaemonProcess, merge  # noqa: E402
from tests.support.redis_server import REDIS, RedisServer  # noqa: E402

BODY = (
    b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}'
)
SLOS = [
    {"name": "chat", "target": 0.99, "sli": {"kind": "llm_success"}},
    {"name": "chat-by-agent", "target": 0.99, "sli": {"kind": "llm_success"},
     "labels": ["agent.id"]},
]  # fmt: skip
AGENTS = 100


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def daemon_config(upstream: str, state: Path, fleet: dict[str, Any] | None) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "node": {"name": state.parent.name},
        "state_dir": str(state),
        "proxy": {
            "routes": [
                {"name": "openai", "prefix": "/openai", "upstream": upstream, "api": "openai"}
            ],
            "correlation": {"hold": "0s"},
        },  # fmt: skip
        "slos": SLOS,
    }
    if fleet is not None:
        extra["fleet"] = fleet
        extra["budgets"] = {"redis_url": fleet.pop("_redis_url", "redis://127.0.0.1:1/0")}
    return merge(LOOPBACK_PORTS, extra)


def start(
    label: str, upstream: str, fleet: dict[str, Any] | None, path: str | None
) -> DaemonProcess:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-fleet-{label}-"))
    env = {"PYTHONPATH": path} if path else {}
    return DaemonProcess(workdir, daemon_config(upstream, workdir / "state", fleet), env).start(60)


def spans_request(index: int, count: int = 500) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    now = time.time_ns()
    for i in range(count):
        span = scope.spans.add()
        span.trace_id, span.span_id = os.urandom(16), os.urandom(8)
        span.name = "chat"
        span.start_time_unix_nano, span.end_time_unix_nano = now - 1_000_000, now
        for key, value in (("gen_ai.operation.name", "chat"),
                           ("agent.id", f"agent-{(index + i) % AGENTS}"),
                           ("agent.version", "1.0"), ("gen_ai.request.model", "gpt-4o-mini"),
                           ("gen_ai.provider.name", "openai")):  # fmt: skip
            kv = span.attributes.add()
            kv.key, kv.value.string_value = key, value
    return request.SerializeToString()


async def calls(daemon: DaemonProcess, total: int, concurrency: int = 8) -> tuple[float, float]:
    """CPU seconds of the daemon per call, and the calls' p50 (seconds)."""
    import aiohttp

    url = f"http://{daemon.addresses['proxy']}/openai/v1/chat/completions"
    latencies: list[float] = []
    sent = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one(n: int) -> None:
            headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-x",
                       "X-Agent-Id": f"agent-{n % AGENTS}"}  # fmt: skip
            started = time.perf_counter()
            async with session.post(url, data=BODY, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}")
            latencies.append(time.perf_counter() - started)

        async def worker() -> None:
            nonlocal sent
            while sent < total:
                sent += 1
                await one(sent)

        for n in range(100):
            await one(n)
        latencies.clear()
        await asyncio.sleep(0.3)
        assert daemon.proc is not None
        before = cpu_seconds(daemon.proc.pid)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        used = cpu_seconds(daemon.proc.pid) - before
    return used / len(latencies), statistics.median(latencies)


async def spans(daemon: DaemonProcess, requests: list[bytes]) -> float:
    """CPU seconds of the daemon per received span."""
    import aiohttp

    url = f"http://{daemon.addresses['otlp_http']}/v1/traces"
    headers = {"Content-Type": "application/x-protobuf"}
    async with aiohttp.ClientSession() as session:

        async def post(body: bytes) -> None:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}")

        await post(requests[0])
        await asyncio.sleep(0.3)
        assert daemon.proc is not None
        before = cpu_seconds(daemon.proc.pid)
        for start in range(0, len(requests), 4):
            await asyncio.gather(*(post(body) for body in requests[start : start + 4]))
        await asyncio.sleep(0.2)  # what the requests left on the writer thread
        used = cpu_seconds(daemon.proc.pid) - before
    return used / (len(requests) * 500)


def base_pythonpath(base: Path) -> str:
    """The base checkout on PYTHONPATH, with this checkout's built span pass copied in when
    the C source is the same (else the base would fall back to the Python pass)."""
    ours = next((ROOT / "src/agent_sre/tracing").glob("_wirepass*.so"), None)
    theirs = base / "src/agent_sre/tracing"
    same = (ROOT / "src/agent_sre/tracing/_wirepass.c").read_bytes() == (
        theirs / "_wirepass.c"
    ).read_bytes()
    if ours is not None and same and not list(theirs.glob("_wirepass*.so")):
        shutil.copy2(ours, theirs / ours.name)
    return f"{base}/src:{base}/daemon"


async def load_part(args: argparse.Namespace, redis_url: str) -> None:
    provider = subprocess.Popen(
        [sys.executable, str(ROOT / "tests/fakes/provider.py"), "--port", "0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert provider.stdout is not None
    upstream = provider.stdout.readline().strip()
    on = {"store": "redis", "publish_interval": "1s", "ttl": "10s", "_redis_url": redis_url}
    daemons = {
        "before": start("before", upstream, None, base_pythonpath(Path(args.base))),
        "off": start("off", upstream, {"enabled": False}, None),
        "on": start("on", upstream, on, None),
    }
    requests = [spans_request(i) for i in range(args.span_requests)]
    figures: dict[str, dict[str, list[float]]] = {k: {"call": [], "p50": [], "span": []}
                                                  for k in daemons}  # fmt: skip
    try:
        print(f"# part 1: before = {args.base}; {args.calls} calls (8 at a time) and "
              f"{args.span_requests} x 500 spans a round, {args.rounds} rounds",
              flush=True)  # fmt: skip
        for _ in range(args.rounds):
            for label, daemon in daemons.items():
                per_call, p50 = await calls(daemon, args.calls)
                figures[label]["call"].append(per_call)
                figures[label]["p50"].append(p50)
                figures[label]["span"].append(await spans(daemon, requests))
        med = {k: {m: statistics.median(v) for m, v in f.items()} for k, f in figures.items()}
        for label in daemons:
            m = med[label]
            print(f"{label:<7} CPU/call {m['call'] * 1e6:7.1f} us  call p50 "
                  f"{m['p50'] * 1e3:6.2f} ms  CPU/span {m['span'] * 1e6:6.2f} us",
                  flush=True)  # fmt: skip
        for a, b in (("on", "off"), ("on", "before"), ("off", "before")):
            print(f"{a}/{b}: CPU/call {med[a]['call'] / med[b]['call']:.3f}x  p50 "
                  f"{med[a]['p50'] / med[b]['p50']:.3f}x  CPU/span "
                  f"{med[a]['span'] / med[b]['span']:.3f}x", flush=True)  # fmt: skip
        with_fleet = daemons["on"]
        import json
        import urllib.request

        with urllib.request.urlopen(with_fleet.url("admin", "/v1/fleet"), timeout=10) as answer:
            view = json.load(answer)
        print(f"on: the view covers {view['covers']}, {view['agents']['total']} agents, "
              f"store {view['store']}", flush=True)  # fmt: skip
    finally:
        for daemon in daemons.values():
            daemon.stop()
        provider.terminate()
        provider.wait(10)


# -- part 2: bounds ----------------------------------------------------------------------


def make_summaries(nodes: int, agents: int, per_node: int, now: float) -> list[NodeSummary]:
    hour = int(now // 3600)
    slos = tuple(
        SLORow.of(f"slo-{i}", 0.99, 30 * 86400.0, "healthy",
                  [(h, 9_990_000 + h % 997, 10_000_000) for h in range(hour - 719, hour + 1)],
                  hour)
        for i in range(10)
    )  # fmt: skip
    out = []
    for n in range(nodes):
        ids = [f"agent-{(n * per_node // 2 + k) % agents:05d}" for k in range(per_node)]
        rows = tuple(
            AgentRow(a, ("1.4.2", "1.5.0"), now - k, 123_456, 789, 12.345678)
            for k, a in enumerate(ids)
        )
        agent_slos = tuple(AgentSLORow(a, "slo-0", 99_000, 100_000) for a in ids)
        out.append(NodeSummary(f"node-{n:03d}", "0.1.0", now, "ok", rows, slos, agent_slos))
    return out


def bounds_part(redis: RedisServer | None, nodes: int, agents: int) -> None:
    now = time.time()
    scenarios = {
        "spread": (agents * 2 // nodes, "10,000 agents each on 2 of 200 nodes"),
        "worst": (agents, "every node reports 10,000 agents"),
    }
    print(f"# part 2: {nodes} nodes, {agents} agents, 10 SLOs (30d, every hour) a node",
          flush=True)  # fmt: skip
    for name, (per_node, what) in scenarios.items():
        summaries = make_summaries(nodes, agents, per_node, now)
        encoded = [encode(s) for s in summaries]
        del summaries
        gc.collect()
        sizes = [len(e) for e in encoded]
        stored = "n/a (no redis-server)"
        if redis is not None:
            client = redis.client()
            client.flushall()
            before = int(client.info("memory")["used_memory"])
            pipe = client.pipeline()
            for i, data in enumerate(encoded):
                pipe.set(f"{{agent-sre:fleet}}:node:node-{i:03d}", data, ex=30)
                pipe.zadd("{agent-sre:fleet}:nodes", {f"node-{i:03d}": now})
            pipe.execute()
            used = int(client.info("memory")["used_memory"]) - before
            stored = f"{used / 2**20:.1f} MiB"
        started = time.perf_counter()
        decoded = [decode(e) for e in encoded]
        decoding = time.perf_counter() - started
        view = build_view(decoded, now, 30.0, 21.0, 10_000)
        elapsed = time.perf_counter() - started
        started = time.perf_counter()
        page = view.agents_page(limit=100)
        one = view.agent(page["items"][0]["agent"])
        answering = time.perf_counter() - started
        del decoded, view
        gc.collect()
        tracemalloc.start()  # a second pass for memory (tracemalloc slows it down)
        decoded = [decode(e) for e in encoded]
        view = build_view(decoded, now, 30.0, 21.0, 10_000)
        del decoded
        gc.collect()
        kept, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert one is not None and view.covers["nodes"] == nodes
        print(f"{name:<7} ({what}): summary {statistics.median(sizes) / 1024:.1f} KiB a node, "
              f"{sum(sizes) / 2**20:.1f} MiB in all; Redis holds {stored}; decode "
              f"{decoding:.2f} s + view {elapsed - decoding:.2f} s (worker thread); first page "
              f"+ one agent {answering * 1e3:.1f} ms (event loop); memory peak "
              f"{peak / 2**20:.0f} MiB, the view keeps "
              f"{kept / 2**20:.0f} MiB; {view.covers['nodes']} nodes, {len(view.agents)} "
              f"agents", flush=True)  # fmt: skip
        del view, encoded
        gc.collect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="/work/wt-before-fleet")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--span-requests", type=int, default=60)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-bounds", action="store_true")
    args = parser.parse_args()
    redis = (
        RedisServer(Path(tempfile.mkdtemp(prefix="bench-fleet-redis-"))).start() if REDIS else None
    )
    try:
        if not args.skip_load:
            if redis is None:
                print("part 1 needs redis-server (tests/setup-services.sh)")
            else:
                asyncio.run(load_part(args, redis.url))
        if not args.skip_bounds:
            bounds_part(redis, args.nodes, args.agents)
    finally:
        if redis is not None:
            redis.stop()


if __name__ == "__main__":
    main()
