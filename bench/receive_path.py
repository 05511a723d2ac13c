"""Receive path: the bare cost of taking in OTLP trace requests, three server kinds compared.

Each server only parses the ``ExportTraceServiceRequest`` with protobuf and acknowledges with
an empty ``ExportTraceServiceResponse``, nothing else (no pipeline, no queue), so the figures
are the per-call cost of the transport and its Python glue, plus the parse every receiver pays:
  (a) ``grpc.aio`` server on uvloop (the daemon's OTLP/gRPC receiver today; the daemon runs
      on ``uvloop.run``), generic handler, raw bytes in, ``FromString`` in the handler;
  (b) synchronous ``grpc.server`` with a ``ThreadPoolExecutor`` (``--workers``, default 4);
  (c) aiohttp on uvloop, ``POST /v1/traces`` with ``application/x-protobuf`` bodies
      (OTLP/HTTP; 200 with the serialized empty response, as the daemon's HTTP receiver).
Each server runs in its own process (this file, a hidden ``--serve`` argument), importing only
its own framework, pinned with all its threads to CPU 1; the load generator (this process,
on uvloop) is pinned to CPU 0. Per round, each phase starts every server fresh:
  1. steady: 10,000 spans/s as 100 requests/s of 100 spans (gRPC: a ``grpc.aio`` channel
     sending raw bytes; HTTP: an aiohttp ``ClientSession`` keeping its connections alive),
     ``--steady-seconds``: server CPU share of one core, server CPU-microseconds a request,
     ack p99, RSS at the end and peak (VmHWM).
  2. saturation: ``--concurrency`` closed-loop senders of 512-span requests (HTTP: as many
     keep-alive connections) for ``--seconds``: spans/s, ack p50/p99, server CPU,
     CPU-microseconds a request, peak RSS.
``--rounds`` repeats the whole set (each round starts with a different server, so no server
always runs first) and prints every round.
Usage: python bench/receive_path.py [--steady-seconds 20] [--seconds 10] [--concurrency 4]
                                    [--workers 4] [--rounds 2]

How to read it: compare servers inside one round (the machine is shared and noisy; rounds
show how far that noise goes). ``x (a)`` is the ratio to the ``grpc.aio`` row of the same
round: below 1 in the CPU and ``us/req`` columns (above 1 in spans/s) means cheaper (faster)
than the daemon's receiver. ``us/req`` is server CPU time over requests acked (at steady load
it includes the server's idle wakeups); minus the ``protobuf parse alone`` figure printed
first, it is the transport's own per-call cost.
``cli cpu`` is the load generator's share of its one core; ``cli wait`` / ``srv wait`` the
share of the wall time their threads sat runnable but not running (``/proc/*/task/*/schedstat``,
summed over threads, so it can pass 100%: other jobs on the core, or the process's own threads
queueing for it, as (b)'s pool does). A row flagged ``!`` (cli cpu >= 90%, or cli wait >= 10%)
may have been limited by the client, not the server; a large ``srv wait`` on (a) or (c) (one
busy thread each) means the server shared its core with another job: rerun that round.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine

    Send = Callable[[bytes], Awaitable[None]]

ROOT = Path(__file__).resolve().parents[1]
SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
METHOD = f"/{SERVICE}/Export"
OK = ExportTraceServiceResponse().SerializeToString()
PROTOBUF = "application/x-protobuf"
MAX_BODY = 16 * 1024 * 1024  # the daemon's max_recv_msg_size_mib: 16
CLIENT_SATURATED = 0.9  # cli cpu, share of one core
CLIENT_STARVED = 0.1  # cli wait, share of the wall time

# (mode, label); (a) first: the ratios are to it
SERVERS = (
    ("aio", "(a) grpc.aio, uvloop"),
    ("sync", "(b) grpc sync, {workers} threads"),
    ("http", "(c) aiohttp OTLP/HTTP, uvloop"),
)


def run_loop(main: Coroutine[Any, Any, Any]) -> Any:
    """Runs ``main`` on uvloop where it is installed, as the daemon does (cli/run.py)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.run(main)
    return uvloop.run(main)


# --- servers (each in its own process; each imports only its own framework) -------------


def announce(port_file: Path, port: int) -> None:
    partial = port_file.with_suffix(".tmp")
    partial.write_text(str(port))
    partial.replace(port_file)


async def serve_aio(port_file: Path) -> None:
    import grpc

    async def export(body: bytes, context: object) -> bytes:
        ExportTraceServiceRequest.FromString(body)
        return OK

    server = grpc.aio.server(
        options=[("grpc.max_receive_message_length", MAX_BODY), ("grpc.so_reuseport", 0)]
    )
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(export)}
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    announce(port_file, port)
    await server.wait_for_termination()


def serve_sync(port_file: Path, workers: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import grpc

    def export(body: bytes, context: object) -> bytes:
        ExportTraceServiceRequest.FromString(body)
        return OK

    server = grpc.server(
        ThreadPoolExecutor(max_workers=workers),
        options=[("grpc.max_receive_message_length", MAX_BODY), ("grpc.so_reuseport", 0)],
    )
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(export)}
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    announce(port_file, port)
    server.wait_for_termination()


async def serve_http(port_file: Path) -> None:
    from aiohttp import web

    async def traces(request: web.Request) -> web.Response:
        ExportTraceServiceRequest.FromString(await request.read())
        return web.Response(body=OK, content_type=PROTOBUF)

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post("/v1/traces", traces)
    # as the daemon's receiver: no access log, no auto-decompression (http_site.start_site)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, auto_decompress=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    announce(port_file, runner.addresses[0][1])
    await asyncio.Event().wait()


def serve(mode: str, port_file: Path, workers: int, cpus: str) -> None:
    if cpus:  # before any thread starts: every thread the server makes inherits it
        os.sched_setaffinity(0, {int(cpu) for cpu in cpus.split(",")})
    if mode == "aio":
        run_loop(serve_aio(port_file))
    elif mode == "sync":
        serve_sync(port_file, workers)
    else:
        run_loop(serve_http(port_file))


# --- load generator -----------------------------------------------------------------------


def start_server(
    mode: str, workdir: Path, workers: int, cpus: set[int] | None
) -> tuple[subprocess.Popen[bytes], str]:
    port_file = workdir / f"{mode}.port"
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve",
            mode,
            "--port-file",
            str(port_file),
            "--workers",
            str(workers),
            "--cpus",
            ",".join(str(cpu) for cpu in sorted(cpus or ())),
        ]
    )
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"server {mode} failed to start")
        time.sleep(0.02)
    return proc, f"127.0.0.1:{port_file.read_text()}"


@asynccontextmanager
async def grpc_client(address: str, connections: int) -> AsyncIterator[Send]:
    """One ``grpc.aio`` channel (HTTP/2 multiplexes the senders), raw bytes, as ingest.py."""
    import grpc

    async with grpc.aio.insecure_channel(
        address, options=[("grpc.max_send_message_length", 64 << 20)]
    ) as channel:
        call = channel.unary_unary(METHOD, None, None)

        async def send(body: bytes) -> None:
            await call(body, timeout=30)

        yield send


@asynccontextmanager
async def http_client(address: str, connections: int) -> AsyncIterator[Send]:
    """An aiohttp session keeping up to ``connections`` HTTP/1.1 connections alive."""
    import aiohttp

    url = f"http://{address}/v1/traces"
    headers = {"Content-Type": PROTOBUF}
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, force_close=False),
        auto_decompress=False,
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=30),
    ) as session:

        async def send(body: bytes) -> None:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"POST /v1/traces: {response.status}")

        yield send


CLIENTS = {"aio": grpc_client, "sync": grpc_client, "http": http_client}


async def saturate(
    mode: str, address: str, body: bytes, seconds: float, concurrency: int
) -> list[float]:
    """Closed loop: ``concurrency`` senders, each sending again as soon as it is acked."""
    latencies: list[float] = []
    async with CLIENTS[mode](address, concurrency) as send:
        for _ in range(3):  # warm up
            await send(body)
        deadline = time.perf_counter() + seconds

        async def sender() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await send(body)
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(sender() for _ in range(concurrency)))
    return latencies


async def steady(
    mode: str, address: str, bodies: list[bytes], spans_per_s: int, per_request: int, seconds: float
) -> list[float]:
    """Open loop: a request every ``per_request / spans_per_s`` s, not waiting for acks."""
    latencies: list[float] = []
    interval = per_request / spans_per_s
    async with CLIENTS[mode](address, 100) as send:

        async def timed(body: bytes) -> None:
            started = time.perf_counter()
            await send(body)
            latencies.append(time.perf_counter() - started)

        from bench.ingest import paced

        await paced(timed, bodies, interval, seconds)
    return latencies


@dataclass
class Run:
    latencies: list[float]  # seconds, sorted
    wall: float
    server_cpu: float  # share of one core
    client_cpu: float  # share of one core
    server_wait: float  # share of the wall time its threads were runnable, not running
    client_wait: float
    rss: float  # MiB, at the end
    peak: float  # MiB, VmHWM

    @property
    def us_per_request(self) -> float:
        return self.server_cpu * self.wall / max(len(self.latencies), 1) * 1e6

    def quantile_ms(self, q: float) -> float:
        return self.latencies[max(int(len(self.latencies) * q) - 1, 0)] * 1000


def measure(proc: subprocess.Popen[bytes], work: Coroutine[Any, Any, list[float]]) -> Run:
    """Runs ``work`` on this process's loop; the server's and this process's CPU over it."""
    import psutil

    from bench.ingest import peak_rss_mib

    server, client = psutil.Process(proc.pid), psutil.Process()
    server_before, client_before = server.cpu_times(), client.cpu_times()
    server_waited, client_waited = runq_wait(proc.pid), runq_wait(os.getpid())
    started = time.perf_counter()
    latencies = run_loop(work)
    wall = time.perf_counter() - started
    server_after, client_after = server.cpu_times(), client.cpu_times()
    server_waits, client_waits = runq_wait(proc.pid), runq_wait(os.getpid())

    def share(before: Any, after: Any) -> float:
        return float(after.user + after.system - before.user - before.system) / wall

    return Run(
        latencies=sorted(latencies),
        wall=wall,
        server_cpu=share(server_before, server_after),
        client_cpu=share(client_before, client_after),
        server_wait=waited(server_waited, server_waits) / wall,
        client_wait=waited(client_waited, client_waits) / wall,
        rss=server.memory_info().rss / 2**20,
        peak=peak_rss_mib(proc.pid),
    )


def runq_wait(pid: int) -> dict[int, int]:
    """Nanoseconds each thread of ``pid`` has spent runnable but waiting for a CPU."""
    found: dict[int, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found[int(task.name)] = int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):  # the thread ended meanwhile
            continue
    return found


def waited(before: dict[int, int], after: dict[int, int]) -> float:
    """Seconds of run-queue wait between two :func:`runq_wait` readings (threads that ended
    meanwhile are not counted)."""
    return sum(ns - before.get(tid, 0) for tid, ns in after.items()) / 1e9


def parse_us(body: bytes, batches: int = 5, seconds: float = 0.1) -> float:
    """CPU-microseconds one ``FromString`` of ``body`` takes in this thread (the best of
    ``batches`` batches of ``seconds`` each)."""
    best = float("inf")
    for _ in range(batches):
        count, started = 0, time.process_time()
        while time.process_time() - started < seconds:
            ExportTraceServiceRequest.FromString(body)
            count += 1
        best = min(best, (time.process_time() - started) / count * 1e6)
    return best


def client_columns(run: Run) -> str:
    limited = run.client_cpu >= CLIENT_SATURATED or run.client_wait >= CLIENT_STARVED
    return (
        f"{run.server_wait * 100:8.1f}%{run.client_cpu * 100:8.1f}%{run.client_wait * 100:8.1f}%"
        f"{'!' if limited else ''}"
    )


WAIT_HEADER = f"{'srv wait':>9}{'cli cpu':>9}{'cli wait':>9}"


def print_steady(rows: list[tuple[str, Run]]) -> None:
    base = rows[0][1]
    print(
        f"  {'':30}{'srv cpu':>8}{'x (a)':>7}{'us/req':>8}{'ack p99':>9}"
        f"{'rss MiB':>9}{'peak MiB':>9}{WAIT_HEADER}"
    )
    for label, run in rows:
        print(
            f"  {label:30}{run.server_cpu * 100:7.1f}%{run.server_cpu / base.server_cpu:7.2f}"
            f"{run.us_per_request:8.0f}"
            f"{run.quantile_ms(0.99):7.2f}ms{run.rss:9.1f}{run.peak:9.1f}"
            f"{client_columns(run)}"
        )


def print_saturation(rows: list[tuple[str, Run]], spans: int) -> None:
    base = rows[0][1]
    base_rate = len(base.latencies) * spans / base.wall
    print(
        f"  {'':30}{'spans/s':>9}{'x (a)':>7}{'p50 ms':>8}{'p99 ms':>8}{'srv cpu':>8}"
        f"{'us/req':>8}{'x (a)':>7}{'peak MiB':>9}{WAIT_HEADER}"
    )
    for label, run in rows:
        rate = len(run.latencies) * spans / run.wall
        print(
            f"  {label:30}{rate:9,.0f}{rate / base_rate:7.2f}{run.quantile_ms(0.5):8.2f}"
            f"{run.quantile_ms(0.99):8.2f}{run.server_cpu:8.2f}{run.us_per_request:8.0f}"
            f"{run.us_per_request / base.us_per_request:7.2f}{run.peak:9.1f}"
            f"{client_columns(run)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steady-seconds", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="saturation, per server")
    parser.add_argument("--concurrency", type=int, default=4, help="saturation senders")
    parser.add_argument("--workers", type=int, default=4, help="(b)'s thread pool size")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--serve", choices=[mode for mode, _ in SERVERS], help=argparse.SUPPRESS)
    parser.add_argument("--port-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cpus", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port_file, args.workers, args.cpus)
        return

    sys.path.insert(0, str(ROOT))
    from bench.ingest import CLIENT_CPU, SERVER_CPU, pin, pin_tree
    from tests.support.spans import make_request

    for module in ("aiohttp", "grpc", "psutil", "uvloop"):  # not inside the first measurement
        importlib.import_module(module)

    big = make_request(512).SerializeToString()
    bodies = [make_request(100).SerializeToString() for _ in range(50)]
    pin(os.getpid(), SERVER_CPU)  # the parse alone, on the servers' core
    parse_small, parse_big = parse_us(bodies[0]), parse_us(big)
    pin(os.getpid(), CLIENT_CPU)
    servers = [(mode, label.format(workers=args.workers)) for mode, label in SERVERS]
    print(
        f"requests: 100 spans, {len(bodies[0]):,} bytes; 512 spans, {len(big):,} bytes;"
        f" server CPU {SERVER_CPU}, client CPU {CLIENT_CPU}"
    )
    print(
        f"protobuf parse alone (FromString, server core, best of 5): {parse_small:.0f} us"
        f" (100 spans), {parse_big:.0f} us (512 spans)"
    )
    summary: dict[str, list[tuple[float, ...]]] = {label: [] for _, label in servers}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)

        def run(mode: str, work: Callable[[str], Coroutine[Any, Any, list[float]]]) -> Run:
            proc, address = start_server(mode, workdir, args.workers, SERVER_CPU)
            try:
                pin_tree(proc.pid, SERVER_CPU)
                return measure(proc, work(address))
            finally:
                proc.terminate()
                proc.wait()

        for round_ in range(args.rounds):
            # rotate the order, so that no server always runs first (or right after another)
            order = servers[round_ % len(servers) :] + servers[: round_ % len(servers)]
            steady_runs: dict[str, Run] = {}
            for mode, label in order:
                steady_runs[label] = run(
                    mode,
                    lambda address, mode=mode: steady(  # type: ignore[misc]
                        mode, address, bodies, 10_000, 100, args.steady_seconds
                    ),
                )
            saturation_runs: dict[str, Run] = {}
            for mode, label in order:
                saturation_runs[label] = run(
                    mode,
                    lambda address, mode=mode: saturate(  # type: ignore[misc]
                        mode, address, big, args.seconds, args.concurrency
                    ),
                )
            print(
                f"\nround {round_ + 1}/{args.rounds}, order {', '.join(m for m, _ in order)}"
                f"\nsteady: 10,000 spans/s as 100 requests/s of 100 spans,"
                f" {args.steady_seconds:.0f}s each"
            )
            print_steady([(label, steady_runs[label]) for _, label in servers])
            print(
                f"saturation: closed loop, {args.concurrency} senders of 512 spans,"
                f" {args.seconds:.0f}s each"
            )
            print_saturation([(label, saturation_runs[label]) for _, label in servers], 512)
            base_steady, base_sat = steady_runs[servers[0][1]], saturation_runs[servers[0][1]]
            for _, label in servers:
                ours = saturation_runs[label]
                summary[label].append(
                    (
                        steady_runs[label].server_cpu / base_steady.server_cpu,
                        len(ours.latencies) / ours.wall / (len(base_sat.latencies) / base_sat.wall),
                        ours.us_per_request / base_sat.us_per_request,
                    )
                )
    if args.rounds > 1:
        print(
            "\nratios to (a), round by round (median):"
            " steady srv cpu | saturation spans/s | saturation us/req"
        )
        for label, rounds in summary.items():
            columns = []
            for column in zip(*rounds, strict=True):
                shown = " ".join(f"{ratio:.2f}" for ratio in column)
                columns.append(f"{shown} ({statistics.median(column):.2f})")
            print(f"  {label:30}{' | '.join(columns)}")
    print(
        f"(! = cli cpu >= {CLIENT_SATURATED:.0%} or cli wait >= {CLIENT_STARVED:.0%}:"
        " the client may have limited that run)"
    )


if __name__ == "__main__":
    main()
