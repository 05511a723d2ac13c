"""Proxy overhead with the real daemon: every engine on as shipped, each off in turn, and
(``--before DIR``) an older checkout run the same way in the same window.

Every daemon under test is the real node (``Node`` from a configuration file: the shipped
``config/agent-sre.yaml`` of its checkout, listeners on port 0, a fresh state directory, the
``openai`` route pointed at the stand-in provider), each in its own process, started once
and measured in turns (``--rounds``), so the machine's drift falls on every variant alike.

Per variant and scenario it prints: added latency p50/p99 (against the stand-in provider
called directly in the same round), requests per second, the daemon's CPU per request (all
threads, and the event-loop thread alone), and the event loop's longest stall (how late a
2 ms timer in the daemon ran at worst). With ``--stages`` a second, instrumented pass gives
the time each proxy stage spends in its own code per call (on_request + on_response, µs,
p50/p99): every resumption of the stage's coroutine is timed with ``perf_counter`` (a
thread CPU clock read costs ~10 µs on this VM, more than most stages), so the figure is
the stage's CPU unless the interpreter lock was held by another thread meanwhile — which
is a cost of the call too.

Variants (``--variants``): ``defaults`` (shipped), ``no-replay`` (``replay.enabled:
false``), ``no-capture`` (``replay.capture.enabled: false``), ``no-correlation``
(``proxy.correlation.enabled: false``), ``no-incidents``, ``bare`` (all four off),
``budget`` (defaults plus one agent budget: a ledger reservation and settlement per call),
``chaos`` (defaults plus chaos enabled with three running experiments that target other
agents: every measured call is untargeted), ``rollout`` (two rollouts: one on the bench's
route for another model, one on another route), ``breaker`` (three circuit breakers that
cover other routes or tool calls), ``replay-session`` (two open replay sessions: one bound
to another route's prefix, one by header only): in each, no engine state concerns the
measured calls. ``gc-20000`` and ``switch-5ms``: see :data:`PROCESS`. ``before`` is the
``--before`` checkout with its own shipped defaults, run by ``--before-python`` (default
``DIR/.venv/bin/python``).

With ``--litellm BIN`` (the ``litellm`` command of a separate venv; ``make bench-peers`` makes
one) LiteLLM's proxy runs the same load against the same stand-in, side by side.
Figures are printed, never asserted. For a closer look, ``BENCH_CPROFILE=FILE`` makes each
daemon profile the measured span into FILE (cProfile), ``BENCH_HEAP=1`` writes the types of the
objects the garbage collector tracks beside its figures.

With ``--providers`` a last pass runs one JSON call of each provider the proxy speaks
(OpenAI, Gemini, Azure OpenAI, an OpenAI-compatible server, Bedrock re-signed with SigV4)
through one daemon, each against the stand-in called directly with the same request.

    .venv/bin/python bench/proxy.py [--requests 2000] [--concurrency 1,16] [--rounds 2]
        [--variants defaults,no-replay,...] [--before /work/wt-d62] [--stages] [--stream]
        [--providers]
        [--settle 12]

Before measuring, each daemon takes a few calls and then ``--settle`` seconds pass, as on a
node that has run a while (correlation holds the proxy's spans only while agents send their
own spans of calls: its first holds run out here with none, and the spans go at once).
A daemon's CPU per call counts ``--drain`` seconds after the load too, less its idle CPU
(measured once, after the settle): a daemon that holds the proxy's spans (up to 10 s)
processes them then, and that work is the calls' (without the drain, figures before
2026-12-07 left it out for daemons that hold every span: ``d62f3e2`` holds none).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Say hello"}],
    "max_tokens": 16,
}
HEADERS = {"Authorization": "Bearer sk-bench", "X-Agent-Id": "bench"}
PROVIDER_CALLS: dict[str, tuple[dict[str, Any], str, dict[str, Any]]] = {
    # name: (its route, the path after the route's prefix, the body)
    "openai": ({}, "/v1/chat/completions", BODY),
    "gemini": (
        {"name": "gemini", "prefix": "/gemini", "api": "gemini"},
        "/v1beta/models/gemini-2.5-flash:generateContent",
        {"contents": [{"parts": [{"text": "Say hello"}]}],
         "generationConfig": {"maxOutputTokens": 16}},
    ),
    "azure": (
        {"name": "azure", "prefix": "/azure", "api": "azure_openai",
         "deployments": {"prod": "gpt-4o-mini"}},
        "/openai/deployments/prod/chat/completions?api-version=2024-10-21",
        {"messages": BODY["messages"], "max_tokens": 16},
    ),
    "local": (
        {"name": "local", "prefix": "/local", "api": "openai_compatible", "upstream_path": "/v1"},
        "/chat/completions",
        {**BODY, "model": "llama3.2"},
    ),
    "bedrock": (
        {"name": "bedrock", "prefix": "/bedrock", "api": "bedrock", "aws_region": "us-east-1"},
        "/model/amazon.nova-lite-v1:0/converse",
        {"messages": [{"role": "user", "content": [{"text": "Say hello"}]}],
         "inferenceConfig": {"maxTokens": 16}},
    ),
}  # fmt: skip
"""``--providers``: one JSON call of each provider the proxy speaks (the stand-in answers
each in its own wire format); Bedrock's is re-signed (SigV4) with credentials the bench
puts in the daemon's environment."""
BENCH_AWS = {"AWS_ACCESS_KEY_ID": "AKIDBENCH0000000000", "AWS_SECRET_ACCESS_KEY": "bench"}
STALL_TICK = 0.002
"""The daemon's stall probe sleeps this long and records how late it woke."""

CHAOS_EXPERIMENTS = [
    {
        "name": f"bench-{index}",
        "targets": {"routes": ["openai"], "agents": [f"someone-else-{index}"], "share": 0.5},
        "faults": [{"type": "error", "probability": 0.5}, {"type": "latency", "delay": "1s"}],
        "duration": "1h",
    }
    for index in range(3)
]

ROLLOUTS = [
    {  # the bench's route, but only calls asking for gpt-4o take part (the bench asks mini)
        "name": "bench-gpt4o",
        "route": "openai",
        "baseline": "gpt-4o",
        "candidate": "gpt-4.1",
        "steps": [{"weight": 50, "duration": "1h"}],
    },
    {
        "name": "bench-claude",
        "route": "anthropic",
        "baseline": "claude-3-5-sonnet-latest",
        "candidate": "claude-sonnet-4-0",
        "steps": [{"weight": 50, "duration": "1h"}],
    },
]
BREAKERS = [
    {"name": "other-routes", "per": "route", "routes": ["anthropic"]},
    {"name": "tools", "per": "tool"},
    {"name": "agents-elsewhere", "per": "agent", "routes": ["anthropic"]},
]
"""Breakers that cover none of the bench's calls (tool calls, another route)."""

VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "no-replay": {"replay": {"enabled": False}},
    "no-capture": {"replay": {"capture": {"enabled": False}}},
    "no-correlation": {"proxy": {"correlation": {"enabled": False}}},
    "no-incidents": {"incidents": {"enabled": False}},
    "bare": {
        "replay": {"enabled": False},
        "proxy": {"correlation": {"enabled": False}},
        "incidents": {"enabled": False},
    },
    "budget": {"budgets": {"budgets": [{"name": "bench", "scope": "agent", "limit_usd": 1e9}]}},
    "chaos": {"chaos": {"enabled": True, "experiments": CHAOS_EXPERIMENTS}},
    "rollout": {"rollouts": {"rollouts": ROLLOUTS}},
    "breaker": {"incidents": {"circuit_breakers": BREAKERS}},
    "replay-session": {},
}
PROCESS: dict[str, list[str]] = {
    "gc-20000": ["--gc-threshold", "20000,20,20"],
    "switch-5ms": ["--switch-interval", "0.005"],
}
"""Variants of the shipped defaults that change the daemon's interpreter once it is ready:
the collector's first threshold at 20,000 (Python's: 700; measured, no help), Python's own
5 ms switch interval (how long a thread holding the interpreter lock keeps the event loop
waiting; the daemon sets 1 ms since session 8, bench/README.md)."""
VARIANTS.update(dict.fromkeys(PROCESS, {}))
SETUP = {"chaos": "--chaos", "replay-session": "--replay-sessions"}
"""Variants whose state is made once the daemon runs (experiments started, sessions open)."""


# -- the daemon's side (runs in the checkout under test, with its own python) ------------


class _Timed:
    """Awaits ``coro``, adding the time of each of its resumptions to ``sink``."""

    __slots__ = ("coro", "sink")

    def __init__(self, coro: Any, sink: list[int]) -> None:
        self.coro = coro
        self.sink = sink

    def __await__(self) -> Any:
        coro, clock = self.coro, time.perf_counter_ns
        spent = 0
        value: Any = None
        error: BaseException | None = None
        try:
            while True:
                started = clock()
                try:
                    step = coro.send(value) if error is None else coro.throw(error)
                except StopIteration as stop:
                    spent += clock() - started
                    return stop.value
                spent += clock() - started
                try:
                    value, error = (yield step), None
                except BaseException as exc:
                    value, error = None, exc
        finally:
            self.sink.append(spent)


class _TimedStage:
    """A stage whose on_request and on_response are timed; per call, the two add up."""

    def __init__(self, stage: Any, samples: dict[str, dict[str, list[int]]]) -> None:
        self.stage = stage
        self.name = stage.name
        self.slot = stage.slot
        self.samples = samples

    def _sink(self, half: str) -> list[int]:
        return self.samples.setdefault(self.name, {"req": [], "resp": []})[half]

    def on_request(self, call: Any) -> Any:
        return _Timed(self.stage.on_request(call), self._sink("req"))

    def on_response(self, call: Any) -> Any:
        return _Timed(self.stage.on_response(call), self._sink("resp"))


def serve_node(
    config_path: str,
    ready: str,
    stats: str,
    stages: bool,
    chaos: bool,
    sessions: bool = False,
    gc_threshold: str = "",
    switch_interval: float = 0.0,
) -> None:
    """Child mode: the checkout's own Node from ``config_path``, with a stall probe; SIGUSR1
    resets the figures, SIGUSR2 writes them to ``stats`` (JSON)."""
    import threading

    from agent_sre.config import load_config
    from agent_sre_daemon.node import Node

    samples: dict[str, dict[str, list[int]]] = {}
    if stages:
        from agent_sre_daemon.proxy import server as proxy_server

        original = proxy_server.ProxyServer.start

        async def start(self: Any) -> Any:
            out = await original(self)
            chain = getattr(self, "_chain", None)
            if chain is not None:
                chain.stages = [_TimedStage(stage, samples) for stage in chain.stages]
            return out

        proxy_server.ProxyServer.start = start  # type: ignore[method-assign]

    node = Node(load_config(config_path), config_path=config_path, ready_file=None)
    worst = [0.0]
    collections = {"started": 0.0, "worst": 0.0, "total": 0.0, "full": 0}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        # the thread's CPU clock: a collection is not preempted work, nor a wait for the GIL
        if phase == "start":
            collections["started"] = time.thread_time()
            return
        took = time.thread_time() - collections["started"]
        collections["total"] += took
        collections["worst"] = max(collections["worst"], took)
        collections["full"] += info["generation"] == 2
        key = f"gen{info['generation']}"
        collections[key] = collections.get(key, 0.0) + took
        collections[key + "_n"] = collections.get(key + "_n", 0) + 1

    gc.callbacks.append(on_gc)

    async def probe() -> None:
        clock = time.perf_counter
        while True:
            started = clock()
            await asyncio.sleep(STALL_TICK)
            late = clock() - started - STALL_TICK
            if late > worst[0]:
                worst[0] = late

    profile_to = os.environ.get("BENCH_CPROFILE")
    profiler: Any = None

    def reset() -> None:
        nonlocal profiler
        if profile_to:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        worst[0] = 0.0
        collections.clear()
        collections.update(started=0.0, worst=0.0, total=0.0, full=0)
        for halves in samples.values():
            halves["req"].clear()
            halves["resp"].clear()

    def dump() -> None:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile_to)
        threads = {str(t.native_id): t.name for t in threading.enumerate()}
        if os.environ.get("BENCH_HEAP"):
            import collections as kinds

            tracked = kinds.Counter(type(o).__qualname__ for o in gc.get_objects())
            Path(stats + ".heap").write_text(json.dumps(tracked.most_common(25)))
        Path(stats + ".tmp").write_text(
            json.dumps(
                {"stall": worst[0], "stages": samples, "threads": threads, "gc": collections}
            )
        )
        os.replace(stats + ".tmp", stats)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, reset)
        loop.add_signal_handler(signal.SIGUSR2, dump)
        running = asyncio.ensure_future(node.run())
        while not node.ready:
            if running.done():
                return running.result()
            await asyncio.sleep(0.02)
        if chaos:
            runtime = next(c for c in node.components if c.name == "chaos")
            for experiment in CHAOS_EXPERIMENTS:
                runtime.start_experiment(str(experiment["name"]))  # type: ignore[attr-defined]
        if gc_threshold:
            gc.set_threshold(*(int(x) for x in gc_threshold.split(",")))
        if switch_interval:
            sys.setswitchinterval(switch_interval)
        if sessions:
            from agent_sre.replay.script import ReplayScript
            from agent_sre_daemon.replay.sessions import ReplaySession

            engine: Any = next(c for c in node.components if c.name == "replay")
            for prefix in ("/anthropic", ""):
                script = ReplayScript([], engine.redactor)
                engine.sessions.open(ReplaySession("", "bench", script, prefix=prefix))
        task = asyncio.ensure_future(probe())
        Path(ready + ".tmp").write_text(json.dumps(node.addresses))
        os.replace(ready + ".tmp", ready)
        try:
            return await running
        finally:
            task.cancel()

    import uvloop

    sys.exit(uvloop.run(main()))


# -- the load generator's side ----------------------------------------------------------


@dataclass
class Result:
    latencies: list[float]
    seconds: float
    cpu: float = 0.0
    loop_cpu: float = 0.0
    threads: dict[str, float] = field(default_factory=dict)
    stall: float = 0.0
    gc: dict[str, float] = field(default_factory=dict)
    stages: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds


@dataclass
class Daemon:
    label: str
    process: subprocess.Popen[bytes]
    url: str
    workdir: Path
    stages: bool
    probe: bool = True
    """False for a peer (LiteLLM): no stall probe, no stage figures."""
    idle_cpu: float = 0.0
    """CPU seconds per second the daemon spends with no calls (its timers), measured once."""

    @property
    def pid(self) -> int:
        return self.process.pid

    def figures(self, reset: bool) -> dict[str, Any]:
        stats = self.workdir / "stats.json"
        stats.unlink(missing_ok=True)
        self.process.send_signal(signal.SIGUSR1 if reset else signal.SIGUSR2)
        if reset:
            return {}
        for _ in range(500):
            if stats.exists():
                return dict(json.loads(stats.read_text()))
            time.sleep(0.01)
        raise RuntimeError(f"{self.label}: no figures from the daemon")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of ``pid`` (by thread id)."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            text = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        found[tid] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_provider() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tests/fakes/provider.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("http"):
        process.kill()
        raise RuntimeError(f"provider did not start: {line!r}")
    return process, line


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merged(out[key], value) if isinstance(out.get(key), dict) else value
    return out


def start_daemon(
    label: str,
    checkout: Path,
    python: str,
    upstream: str,
    extra: dict[str, Any],
    stages: bool,
    providers: tuple[str, ...] = (),
) -> Daemon:
    """The checkout's shipped configuration, on port 0, the openai route to ``upstream``."""
    import yaml

    workdir = Path(tempfile.mkdtemp(prefix=f"bench-proxy-{label}-"))
    shipped = yaml.safe_load((checkout / "config/agent-sre.yaml").read_text())
    config = merged(shipped, extra)
    config["node"] = {"name": "bench"}
    config["state_dir"] = str(workdir / "state")
    config["receivers"]["otlp"]["grpc"]["endpoint"] = "127.0.0.1:0"
    config["receivers"]["otlp"]["http"]["endpoint"] = "127.0.0.1:0"
    config["exporters"]["prometheus"]["endpoint"] = "127.0.0.1:0"
    config["exporters"]["otlp"]["endpoint"] = ""
    config["admin"]["endpoint"] = "127.0.0.1:0"
    config["admin"]["token"] = "bench"
    config["proxy"]["endpoint"] = "127.0.0.1:0"
    for route in config["proxy"]["routes"]:
        if route["name"] == "openai":
            route["upstream"] = upstream
    for name in providers:
        route = dict(PROVIDER_CALLS[name][0])
        if route:
            route["upstream"] = upstream + route.pop("upstream_path", "")
            config["proxy"]["routes"].append(route)
    path = workdir / "agent-sre.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    ready = workdir / "ready.json"
    args = [python, str(Path(__file__).resolve()), "--serve-node", str(path)]
    args += ["--ready", str(ready), "--stats", str(workdir / "stats.json")]
    if stages:
        args.append("--stages")
    if "chaos" in extra:
        args.append("--chaos")
    if label in SETUP and SETUP[label] not in args:
        args.append(SETUP[label])
    args += PROCESS.get(label, [])
    env = {
        **os.environ,
        "PYTHONPATH": f"{checkout / 'src'}:{checkout / 'daemon'}",
        "AGENT_SRE_LOG_LEVEL": "warning",
        **(BENCH_AWS if providers else {}),
    }
    log = (workdir / "daemon.log").open("wb")
    process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{label} did not start:\n{(workdir / 'daemon.log').read_text()}")
        time.sleep(0.05)
    address = json.loads(ready.read_text())["proxy"]
    return Daemon(label, process, f"http://{address}/openai", workdir, stages)


def start_litellm(binary: str, upstream: str) -> Daemon:
    """LiteLLM's proxy, one worker, offline, the same stand-in behind it."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="bench-proxy-litellm-"))
    config = workdir / "litellm.yaml"
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
    args = [binary, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        [*args, "--num_workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(600):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return Daemon("litellm", process, f"http://127.0.0.1:{port}", workdir, False, False)
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("litellm did not start")


async def idle_rate(daemon: Daemon, seconds: float) -> float:
    """The daemon's CPU per second of wall time while nobody calls it."""
    before = sum(thread_cpu(daemon.pid).values())
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    spent = sum(thread_cpu(daemon.pid).values()) - before
    return spent / (time.perf_counter() - started)


async def load(
    url: str,
    stream: bool,
    total: int,
    concurrency: int,
    daemon: Daemon | None,
    path: str = "/v1/chat/completions",
    payload: dict[str, Any] = BODY,
    drain: float = 0.0,
) -> Result:
    """Closed loop with ``concurrency`` workers; ``daemon``'s figures over the same span and
    ``drain`` seconds after it (work the daemon put off, e.g. spans correlation held, is the
    calls' too), less the daemon's idle CPU over the drain."""
    import aiohttp

    body = json.dumps({**payload, "stream": stream} if stream else payload).encode()
    headers = {**HEADERS, "Content-Type": "application/json"}
    latencies: list[float] = []
    remaining = total
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            started = time.perf_counter()
            async with session.post(url + path, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{url}: HTTP {response.status}")
            latencies.append(time.perf_counter() - started)

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await one()

        for _ in range(min(100, total)):  # warm-up: connections, caches
            await one()
        latencies.clear()
        if daemon is not None:
            await asyncio.sleep(0.3)  # what the warm-up left for background work
            if daemon.probe:
                daemon.figures(reset=True)
            cpu_before = thread_cpu(daemon.pid)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        result = Result(latencies, elapsed)
        if daemon is not None:
            drained = 0.0
            if drain > 0:
                drain_started = time.perf_counter()
                await asyncio.sleep(drain)
                drained = time.perf_counter() - drain_started
            cpu_after = thread_cpu(daemon.pid)
            result.threads = {tid: cpu_after[tid] - cpu_before.get(tid, 0.0) for tid in cpu_after}
            result.cpu = max(0.0, sum(result.threads.values()) - daemon.idle_cpu * drained)
            result.loop_cpu = result.threads.get(str(daemon.pid), 0.0)
            figures = daemon.figures(reset=False) if daemon.probe else {}
            result.stall = float(figures.get("stall", 0.0))
            result.gc = figures.get("gc", {})
            result.stages = figures.get("stages", {})
            names = figures.get("threads", {})
            result.threads = {
                names.get(tid, tid): cpu for tid, cpu in result.threads.items() if cpu > 0
            }
    return result


def ms(seconds: float) -> str:
    return f"{seconds * 1000:6.2f}"


def report(name: str, label: str, direct: Result, proxied: Result) -> dict[str, float]:
    d50, d99 = direct.pct(0.5), direct.pct(0.99)
    p50, p99 = proxied.pct(0.5), proxied.pct(0.99)
    calls = len(proxied.latencies)
    figures = {
        "added_p50": p50 - d50,
        "added_p99": p99 - d99,
        "p50": p50,
        "p99": p99,
        "rps": proxied.rps,
        "direct_rps": direct.rps,
        "cpu_us": proxied.cpu / calls * 1e6,
        "loop_cpu_us": proxied.loop_cpu / calls * 1e6,
        "stall_ms": proxied.stall * 1000,
        "gc_worst_ms": proxied.gc.get("worst", 0.0) * 1000,
        "gc_us": proxied.gc.get("total", 0.0) / calls * 1e6,
    }
    others = ", ".join(
        f"{thread} {cpu / calls * 1e6:.0f}"
        for thread, cpu in sorted(proxied.threads.items(), key=lambda kv: -kv[1])
        if thread != "MainThread" and cpu / calls * 1e6 >= 1
    )
    print(
        f"{name:<10} {label:<15} p50 {ms(p50)} p99 {ms(p99)} ms (p99/p50 {p99 / p50:4.1f}) | "
        f"added p50 {ms(p50 - d50)} p99 {ms(p99 - d99)} ms | req/s {proxied.rps:6.0f} "
        f"(direct {direct.rps:6.0f}) | CPU/req {figures['cpu_us']:5.0f} µs, loop "
        f"{figures['loop_cpu_us']:5.0f} | stall {figures['stall_ms']:6.2f} ms | GC worst "
        f"{figures['gc_worst_ms']:5.1f} ms, {figures['gc_us']:4.0f} µs/req, "
        f"{proxied.gc.get('full', 0):.0f} full"
        + (f" | threads µs/req: {others}" if others else ""),
        flush=True,
    )
    return figures


def stage_table(label: str, result: Result) -> None:
    if not result.stages:
        return
    print(f"  stages of {label} (µs per call, own code, on_request + on_response):")
    total50 = 0.0
    for name, halves in result.stages.items():
        req, resp = halves["req"], halves["resp"]
        per_call = [a + b for a, b in zip(req, resp, strict=False)] or req or resp
        if not per_call:
            continue
        ordered = sorted(per_call)

        def at(q: float, values: list[int] = ordered) -> float:
            return values[min(len(values) - 1, int(q * len(values)))] / 1000

        total50 += at(0.5)
        print(
            f"    {name:<18} p50 {at(0.5):8.1f}  p99 {at(0.99):8.1f}  "
            f"(in {sorted(req)[len(req) // 2] / 1000 if req else 0:6.1f} / "
            f"back {sorted(resp)[len(resp) // 2] / 1000 if resp else 0:6.1f})"
        )
    print(f"    {'sum of p50s':<18}     {total50:8.1f}")


def summarise(rows: dict[tuple[str, str], list[dict[str, float]]]) -> None:
    print("\n# medians over rounds (ratios to `defaults`, or to `before` when run)")
    scenarios = sorted({s for s, _ in rows})
    for scenario in scenarios:
        labels = [label for s, label in rows if s == scenario]
        base_label = "before" if "before" in labels else labels[0]
        med = {
            label: {
                key: sorted(r[key] for r in rows[(scenario, label)])[
                    len(rows[(scenario, label)]) // 2
                ]
                for key in rows[(scenario, label)][0]
            }
            for label in labels
        }
        base = med[base_label]
        for label in labels:
            m = med[label]
            print(
                f"{scenario:<10} {label:<15} added p50 {ms(m['added_p50'])} "
                f"({m['added_p50'] / base['added_p50']:4.2f}x) | p99 {ms(m['p99'])} ms, "
                f"p99/p50 {m['p99'] / m['p50']:4.1f} | req/s {m['rps']:6.0f} "
                f"({m['rps'] / base['rps']:4.2f}x) | CPU/req {m['cpu_us']:5.0f} µs "
                f"({m['cpu_us'] / base['cpu_us']:4.2f}x) | stall {m['stall_ms']:6.2f} ms"
            )


async def run(args: argparse.Namespace) -> None:
    provider, upstream = start_provider()
    daemons: list[Daemon] = []
    try:
        if args.before:
            before = Path(args.before).resolve()
            python = args.before_python or str(before / ".venv/bin/python")
            daemons.append(start_daemon("before", before, python, upstream, {}, False))
        for other in args.other:
            label, _, where = other.partition("=")
            checkout = Path(where).resolve()
            own = checkout / ".venv/bin/python"
            python = str(own) if own.exists() else sys.executable
            daemons.append(start_daemon(label, checkout, python, upstream, {}, False))
        for variant in args.variants:
            daemons.append(
                start_daemon(variant, ROOT, sys.executable, upstream, VARIANTS[variant], False)
            )
        if args.litellm:
            daemons.append(start_litellm(args.litellm, upstream))
        if args.settle > 0:
            # a node that has run a while: a few calls, then correlation's first holds run
            # out with no agent span, so the node is quiet (the proxy's spans go at once)
            for daemon in daemons:
                await load(daemon.url, False, 10, 1, None)
            await asyncio.sleep(args.settle)
        if args.drain > 0:
            for daemon in daemons:
                if daemon.probe:
                    daemon.idle_cpu = await idle_rate(daemon, 3.0)
            print(
                "# idle CPU (share of a core): "
                + ", ".join(f"{d.label} {d.idle_cpu:.3f}" for d in daemons if d.probe),
                flush=True,
            )
        print(
            f"# {os.cpu_count()} CPUs, python {sys.version.split()[0]}, {args.requests} "
            f"requests per scenario, {args.rounds} rounds, {time.strftime('%Y-%m-%d %H:%M')}",
            flush=True,
        )
        rows: dict[tuple[str, str], list[dict[str, float]]] = {}
        kinds = (False, True) if args.stream else (False,)
        for round_no in range(args.rounds):
            print(f"# round {round_no + 1}", flush=True)
            for concurrency in args.concurrency:
                for stream in kinds:
                    name = f"{'stream' if stream else 'json'} c={concurrency}"
                    direct = await load(upstream, stream, args.requests, concurrency, None)
                    for daemon in daemons:
                        result = await load(
                            daemon.url, stream, args.requests, concurrency, daemon, drain=args.drain
                        )
                        rows.setdefault((name, daemon.label), []).append(
                            report(name, daemon.label, direct, result)
                        )
        summarise(rows)
        if args.providers:
            await providers_pass(args, upstream, daemons)
        if args.stages:
            for daemon in daemons:
                daemon.process.terminate()
                daemon.process.wait(timeout=30)
            daemons.clear()
            print("\n# instrumented pass: each stage's own time per call")
            concurrency = args.concurrency[-1]
            for variant in args.variants:
                daemon = start_daemon(
                    variant, ROOT, sys.executable, upstream, VARIANTS[variant], True
                )
                daemons.append(daemon)
                if args.settle > 0:
                    await load(daemon.url, False, 10, 1, None)
                    await asyncio.sleep(args.settle)
                result = await load(
                    daemon.url, False, args.requests, concurrency, daemon, drain=args.drain
                )
                stage_table(f"{variant}, json c={concurrency}", result)
    finally:
        for daemon in daemons:
            daemon.process.terminate()
            try:
                daemon.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.process.kill()
        provider.terminate()
        provider.wait(timeout=10)


async def providers_pass(args: argparse.Namespace, upstream: str, daemons: list[Daemon]) -> None:
    """Each provider's call through this checkout's daemon (shipped defaults plus the
    providers' routes), against the stand-in called directly with the same request."""
    for daemon in daemons:
        daemon.process.terminate()
        daemon.process.wait(timeout=30)
    daemons.clear()
    names = tuple(name for name in PROVIDER_CALLS if name != "openai")
    daemon = start_daemon("providers", ROOT, sys.executable, upstream, {}, False, names)
    daemons.append(daemon)
    base = daemon.url.rsplit("/openai", 1)[0]
    concurrency = args.concurrency[-1]
    print(f"\n# each provider's JSON call, c={concurrency} (the daemon: defaults + routes)")
    rows: dict[tuple[str, str], list[dict[str, float]]] = {}
    for _ in range(args.rounds):
        for name, (route, path, payload) in PROVIDER_CALLS.items():
            prefix = route.get("prefix", "/openai")
            direct_path = route.get("upstream_path", "") + path
            direct = await load(upstream, False, args.requests, concurrency, None,
                                direct_path, payload)  # fmt: skip
            result = await load(base + prefix, False, args.requests, concurrency, daemon,
                                path, payload)  # fmt: skip
            rows.setdefault((f"json c={concurrency}", name), []).append(
                report(f"json c={concurrency}", name, direct, result)
            )
    summarise(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument(
        "--concurrency", type=lambda v: [int(x) for x in v.split(",")], default=[1, 16]
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--variants",
        type=lambda v: [x for x in v.split(",") if x],
        default=["defaults", "no-replay", "no-capture", "no-correlation", "no-incidents"],
        help=f"any of {', '.join(VARIANTS)}",
    )
    parser.add_argument("--before", help="a checkout to run the same way (its shipped config)")
    parser.add_argument("--before-python", help="its python (default DIR/.venv/bin/python)")
    parser.add_argument(
        "--other",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="another checkout, shipped defaults (its .venv, else this python); repeatable",
    )
    parser.add_argument("--litellm", help="path to a litellm command (separate venv)")
    parser.add_argument("--stages", action="store_true", help="add the per-stage pass")
    parser.add_argument("--stream", action="store_true", help="streamed calls too")
    parser.add_argument(
        "--providers", action="store_true", help="add one pass per provider (Gemini, Azure...)"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=12.0,
        help="seconds to wait after a few calls before measuring (the shipped hold is 10 s: "
        "long enough for correlation to find no agent traces its calls); 0: measure at once",
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=11.0,
        help="seconds after each load still counted in the daemon's CPU (less its idle CPU): "
        "spans held by correlation (up to the 10 s hold) are processed then; 0: none",
    )
    parser.add_argument("--serve-node", help=argparse.SUPPRESS)
    parser.add_argument("--ready", help=argparse.SUPPRESS)
    parser.add_argument("--stats", help=argparse.SUPPRESS)
    parser.add_argument("--chaos", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--replay-sessions", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--gc-threshold", default="", help=argparse.SUPPRESS)
    parser.add_argument("--switch-interval", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_node:
        serve_node(
            args.serve_node,
            args.ready,
            args.stats,
            args.stages,
            args.chaos,
            args.replay_sessions,
            args.gc_threshold,
            args.switch_interval,
        )
        return
    for variant in args.variants:
        if variant not in VARIANTS:
            parser.error(f"unknown variant {variant!r}")
    import uvloop

    uvloop.run(run(args))


if __name__ == "__main__":
    main()
