"""Ingest benchmark: OTLP/gRPC in -> classify, enrich, durable queue -> OTLP/gRPC out.

Runs, in one go and on the same machine state:
  1. saturation: closed-loop senders of 512-span requests (about 12 attributes a span, mixed
     agent span kinds) against (a) a bare gRPC server that only parses and acknowledges, the
     baseline, (b) rotel (``--rotel PATH``: a Rust collector, OTLP in -> OTLP out, not a
     dependency), (c) the daemon forwarding to a null upstream with the Python span pass
     (``receivers.otlp.span_pass: python``), and (d) the same with the native span pass;
     spans/s, ack latency p50/p99, process CPU, peak RSS, and ratios to (a).
  2. steady: 10,000 spans/s as 100 requests/s of 100 spans, OTLP in -> OTLP out, the figure
     the OpenTelemetry Collector publishes from its load tests (CPU share of one core, RSS),
     for the same servers.

The daemons run the shipped defaults (trace buffer, one-call correlation) plus one SLO
(``--no-slo``: none), as a node with an SLO configured does. The server under test is pinned
to CPU 1 and the load generator to CPU 0 where the machine has two cores.
``--other LABEL=DIR`` adds a native-pass daemon row run from another checkout's code (the
commit before a change, in the same run); ``--steady-only`` skips the saturation runs;
``--protocol http`` sends the steady load as OTLP/HTTP protobuf (rotel and the daemons; the
bare baseline speaks gRPC only: ``bench/receive_path.py`` compares the bare receivers).
Usage: python bench/ingest.py [--seconds 15] [--concurrency 4] [--rotel PATH] [--fsync]
                              [--other LABEL=DIR] [--steady-only] [--protocol grpc|http]
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
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.spans import make_request  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
PROTOCOL = "grpc"
"""How the steady load reaches the servers under test (``--protocol``)."""
SERVER_CPU = {1} if (os.cpu_count() or 1) > 1 else None
CLIENT_CPU = {0} if (os.cpu_count() or 1) > 1 else None


def pin(pid: int, cpus: set[int] | None) -> None:
    if cpus is not None:
        os.sched_setaffinity(pid, cpus)


def start_helper(mode: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port_file = workdir / f"{mode}.port"
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "_servers.py"), mode, str(port_file)]
    )
    while not port_file.exists() or not port_file.read_text():
        time.sleep(0.02)
    return proc, f"127.0.0.1:{port_file.read_text()}"


SLO = """slos:
  - name: bench-task-success
    target: 0.99
    window: 7d
    sli: {kind: task_success, match: {agent.id: agent-0}}
"""


def start_daemon(
    workdir: Path,
    upstream: str,
    fsync: bool = False,
    replay: bool = True,
    slo: bool = False,
    span_pass: str = "auto",
    checkout: Path | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """A daemon of this checkout, or of ``checkout`` (its ``src`` and ``daemon`` first on the
    path, run by this python), forwarding to ``upstream``."""
    workdir.mkdir(exist_ok=True)
    config = workdir / "bench.yaml"
    config.write_text(
        f"replay: {{enabled: {str(replay).lower()}}}\n"
        + (SLO if slo else "")
        + f"""
state_dir: {workdir / "state"}
node: {{name: bench}}
receivers:
  otlp:
    grpc: {{endpoint: "127.0.0.1:0", max_recv_msg_size_mib: 16}}
    http: {{endpoint: "127.0.0.1:0"}}
    span_pass: {span_pass}
exporters:
  otlp: {{endpoint: "{upstream}", compression: none, queue: {{fsync: {str(fsync).lower()}}}}}
  prometheus: {{endpoint: "127.0.0.1:0"}}
proxy: {{endpoint: "127.0.0.1:0"}}
admin: {{endpoint: "127.0.0.1:0"}}
"""
    )
    ready = workdir / "ready.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent_sre_daemon.cli",
            "run",
            "--config",
            str(config),
            "--ready-file",
            str(ready),
            "--log-level",
            "warning",
        ],
        env=None
        if checkout is None
        else {**os.environ, "PYTHONPATH": f"{checkout / 'src'}:{checkout / 'daemon'}"},
    )
    while not ready.exists():
        if proc.poll() is not None:
            raise SystemExit("daemon failed to start")
        time.sleep(0.05)
    addresses = json.loads(ready.read_text())
    if PROTOCOL == "http":
        return proc, f"http://{addresses['otlp_http']}/v1/traces"
    return proc, addresses["otlp_grpc"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_rotel(binary: str, upstream: str) -> tuple[subprocess.Popen[bytes], str]:
    """rotel forwarding OTLP/gRPC to ``upstream`` uncompressed (as the daemons do here)."""
    grpc_port, http_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            binary,
            "start",
            "--otlp-grpc-endpoint",
            f"127.0.0.1:{grpc_port}",
            "--otlp-http-endpoint",
            f"127.0.0.1:{http_port}",
            "--otlp-grpc-max-recv-msg-size-mib",
            "16",
            "--exporter",
            "otlp",
            "--otlp-exporter-endpoint",
            f"http://{upstream}",
            "--otlp-exporter-compression",
            "none",
        ],
        stdout=subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{grpc_port}"
    if PROTOCOL == "http":
        address = f"http://127.0.0.1:{http_port}/v1/traces"
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise SystemExit("rotel failed to start")
        try:
            socket.create_connection(("127.0.0.1", grpc_port), timeout=0.2).close()
            return proc, address
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("rotel did not listen in 30 s") from None
            time.sleep(0.05)


async def saturate(
    address: str, body: bytes, spans: int, seconds: float, concurrency: int
) -> dict[str, float]:
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(
        address, options=[("grpc.max_send_message_length", 64 << 20)]
    ) as channel:
        call = channel.unary_unary(METHOD, None, None)
        for _ in range(3):  # warm up
            await call(body, timeout=30)
        deadline = time.perf_counter() + seconds

        async def sender() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await call(body, timeout=30)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "spans_per_s": len(latencies) * spans / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "requests": len(latencies),
    }


def mixed_request(per_request: int, traces: int) -> bytes:
    """``per_request`` spans spread over ``traces`` traces (the trace buffer splits them)."""
    request = make_request(per_request // traces)
    for _ in range(traces - 1):
        request.MergeFrom(make_request(per_request // traces))
    return request.SerializeToString()


async def steady(
    address: str,
    spans_per_s: int,
    per_request: int,
    seconds: float,
    traces: int = 1,
    bodies: list[bytes] | None = None,
) -> None:
    """Sends ``bodies`` (default: 50 requests of ``traces`` traces) round and round; over
    OTLP/HTTP (protobuf, kept-alive connections) when ``address`` is an ``http://`` URL."""
    interval = per_request / spans_per_s
    if bodies is None:
        bodies = [mixed_request(per_request, traces) for _ in range(50)]
    if address.startswith("http://"):
        await steady_http(address, interval, seconds, bodies)
        return
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(METHOD, None, None)
        await paced(lambda body: call(body, timeout=30), bodies, interval, seconds)


async def paced(
    send: Callable[[bytes], Awaitable[object]], bodies: list[bytes], interval: float, seconds: float
) -> None:
    """An open-loop load: ``send`` of ``bodies`` round and round, one every ``interval``
    seconds for ``seconds``, never waiting for an answer before the next; then every answer."""
    next_at = time.perf_counter()
    end = next_at + seconds
    pending: set[asyncio.Future[object]] = set()
    i = 0
    while next_at < end:
        task = asyncio.ensure_future(send(bodies[i % len(bodies)]))
        pending.add(task)
        task.add_done_callback(pending.discard)
        i += 1
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    await asyncio.gather(*pending)


async def steady_http(url: str, interval: float, seconds: float, bodies: list[bytes]) -> None:
    import aiohttp

    headers = {"Content-Type": "application/x-protobuf"}

    async def post(session: aiohttp.ClientSession, body: bytes) -> None:
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            if response.status != 200:
                raise SystemExit(f"{url} answered {response.status}")

    async with aiohttp.ClientSession() as session:
        await paced(lambda body: post(session, body), bodies, interval, seconds)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(proc: subprocess.Popen[bytes], work: object) -> tuple[object, float, float, float]:
    """Runs ``work`` (a coroutine) and returns (result, cpu share of one core, rss MiB, peak)."""
    process = psutil.Process(proc.pid)
    before = process.cpu_times()
    started = time.perf_counter()
    result = asyncio.run(work)  # type: ignore[arg-type]
    wall = time.perf_counter() - started
    after = process.cpu_times()
    cpu = (after.user + after.system - before.user - before.system) / wall
    return result, cpu, process.memory_info().rss / 2**20, peak_rss_mib(proc.pid)


def pin_tree(pid: int, cpus: set[int] | None) -> None:
    """Pins a process and every thread it has (grpc starts its own)."""
    for thread in psutil.Process(pid).threads():
        pin(thread.id, cpus)


def print_saturation(rows: list[tuple[str, dict[str, float], float, float]]) -> None:
    header = f"{'':28}{'spans/s':>12}{'ack p50 ms':>12}{'ack p99 ms':>12}{'cpu':>8}{'peak MiB':>10}"
    print(header)
    for name, r, cpu, peak in rows:
        print(
            f"{name:28}{r['spans_per_s']:12,.0f}{r['p50_ms']:12.2f}{r['p99_ms']:12.2f}"
            f"{cpu:8.2f}{peak:10.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--steady-seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rotel", help="the rotel-agent binary (pip install rotel, own venv)")
    parser.add_argument("--fsync", action="store_true", help="queue.fsync: true in the daemons")
    parser.add_argument("--no-slo", action="store_true", help="no SLO configured")
    parser.add_argument(
        "--rounds", type=int, default=3, help="--replay-only: off/on pairs, the median ratio"
    )
    parser.add_argument(
        "--replay-only",
        action="store_true",
        help="only the trace buffer's cost: steady 10k spans/s with replay off, then on",
    )
    parser.add_argument(
        "--other",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="a daemon row (native pass) run from another checkout's code; repeatable",
    )
    parser.add_argument("--steady-only", action="store_true", help="skip the saturation runs")
    parser.add_argument(
        "--protocol",
        choices=("grpc", "http"),
        default="grpc",
        help="http: the steady load as OTLP/HTTP protobuf (with --steady-only; no baseline row)",
    )
    args = parser.parse_args()
    global PROTOCOL
    PROTOCOL = args.protocol
    if PROTOCOL == "http" and not args.steady_only:
        parser.error("--protocol http measures the steady load only: add --steady-only")
    pin(os.getpid(), CLIENT_CPU)
    if args.replay_only:
        replay_cost(args.steady_seconds, args.rounds)
        return
    body = make_request(512).SerializeToString()
    print(
        f"request: 512 spans, {len(body)} bytes; server CPU {SERVER_CPU}, client CPU {CLIENT_CPU}"
    )
    slo = not args.no_slo
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        sink, sink_addr = start_helper("sink", workdir)
        pin(sink.pid, CLIENT_CPU)

        def servers() -> list[tuple[str, Callable[[str], tuple[subprocess.Popen[bytes], str]]]]:
            found: list[tuple[str, Callable[[str], tuple[subprocess.Popen[bytes], str]]]] = []
            if PROTOCOL == "grpc":  # the bare server speaks gRPC (bench/receive_path.py: both)
                found.append(
                    ("baseline (parse + ack)", lambda name: start_helper("baseline", workdir))
                )
            if args.rotel:
                found.append(("rotel (in -> out)", lambda name: start_rotel(args.rotel, sink_addr)))
            for span_pass in ("python", "auto"):
                label = f"agent-sre, {'Python' if span_pass == 'python' else 'native'} pass"
                found.append(
                    (
                        label,
                        lambda name, span_pass=span_pass: start_daemon(  # type: ignore[misc]
                            workdir / name, sink_addr, args.fsync, slo=slo, span_pass=span_pass
                        ),
                    )
                )
            for other in args.other:
                name, _, where = other.partition("=")
                found.append(
                    (
                        f"{name}, native pass",
                        lambda run, where=where: start_daemon(  # type: ignore[misc]
                            workdir / run, sink_addr, args.fsync, slo=slo, checkout=Path(where)
                        ),
                    )
                )
            return found

        rows: list[tuple[str, dict[str, float], float, float]] = []
        for index, (label, start) in enumerate([] if args.steady_only else servers()):
            proc, address = start(f"saturation-{index}")
            pin_tree(proc.pid, SERVER_CPU)
            try:
                load = saturate(address, body, 512, args.seconds, args.concurrency)
                found, cpu, _, peak = measure(proc, load)
                assert isinstance(found, dict)
                rows.append((label, found, cpu, peak))
            finally:
                proc.terminate()
                proc.wait()
        if rows:
            print(
                f"\nsaturation: closed loop, {args.concurrency} senders, {args.seconds:.0f}s each"
            )
            print_saturation(rows)
            base = rows[0][1]
        for label, ours, cpu, _ in rows[1:]:
            print(
                f"{label} / baseline: throughput {ours['spans_per_s'] / base['spans_per_s']:.2f}x,"
                f" ack p99 {ours['p99_ms'] / base['p99_ms']:.2f}x;"
                f" {ours['spans_per_s'] / max(cpu, 1e-9):,.0f} spans per CPU-second"
            )

        # Steady 10k spans/s, each server fresh (RSS not inflated by the saturation run).
        seconds = args.steady_seconds
        steady_rows: list[tuple[str, float, float, float]] = []
        try:
            for index, (label, start) in enumerate(servers()):
                proc, address = start(f"steady-{index}")
                pin_tree(proc.pid, SERVER_CPU)
                try:
                    _, cpu, rss, peak = measure(proc, steady(address, 10_000, 100, seconds))
                    steady_rows.append((label, cpu, rss, peak))
                finally:
                    proc.terminate()
                    proc.wait()
        finally:
            sink.terminate()
            sink.wait()
        print(
            f"\nsteady: 10,000 spans/s as 100 spans/request, {seconds:.0f}s, OTLP in"
            f" ({'OTLP/HTTP protobuf' if PROTOCOL == 'http' else 'gRPC'}) -> OTLP/gRPC out"
        )
        base_cpu = steady_rows[0][1]
        rotel_cpu = next((cpu for label, cpu, _, _ in steady_rows if label.startswith("rotel")), 0)
        for label, cpu, rss, peak in steady_rows:
            versus = f"; {cpu / base_cpu:.2f}x the baseline's cpu" if PROTOCOL == "grpc" else ""
            if rotel_cpu:
                versus += f", {cpu / rotel_cpu:.2f}x rotel's"
            print(
                f"  {label:26} cpu {cpu * 100:5.1f}% of one core, rss {rss:6.1f} MiB"
                f" (peak {peak:6.1f} MiB){versus}"
            )
        print("  (the OpenTelemetry Collector's TestTrace10kSPS: about 6-13% of a core, 55-80 MiB)")


def replay_cost(seconds: float, rounds: int) -> None:
    """The trace buffer's CPU at a steady 10,000 spans/s (100-span requests of 10 traces
    each, so every request is split by trace), against the same daemon with
    ``replay.enabled: false`` run right before it, ``rounds`` pairs each with no SLO and with
    one SLO; the median of the pairs' ratios; and the disk bytes it writes per span."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        sink, sink_addr = start_helper("sink", workdir)
        pin(sink.pid, CLIENT_CPU)
        results: dict[tuple[bool, bool], list[tuple[float, float, int]]] = {}
        try:
            for round_ in range(rounds):
                for slo, replay in ((False, False), (False, True), (True, False), (True, True)):
                    name = f"{round_}-{'slo-' if slo else ''}{'on' if replay else 'off'}"
                    where = workdir / name
                    where.mkdir()
                    daemon, address = start_daemon(where, sink_addr, replay=replay, slo=slo)
                    pin_tree(daemon.pid, SERVER_CPU)
                    # every request carries traces never sent before, as an agent fleet's do
                    bodies = [mixed_request(100, 10) for _ in range(int(seconds * 100) + 1)]
                    try:
                        _, cpu, rss, _ = measure(
                            daemon, steady(address, 10_000, 100, seconds, bodies=bodies)
                        )
                        time.sleep(1.0)  # the writer's last flush
                    finally:
                        daemon.terminate()
                        daemon.wait()
                    state = where / "state"
                    stored = sum(
                        f.stat().st_size
                        for f in [
                            *state.glob("replay.sqlite*"),
                            *(state / "replay.segments").glob("*.seg"),
                        ]
                    )
                    results.setdefault((slo, replay), []).append((cpu, rss, stored))
        finally:
            sink.terminate()
            sink.wait()
    spans = 10_000 * seconds
    print(
        f"\nreplay: steady 10,000 spans/s, 100 spans (10 traces) a request, {seconds:.0f}s,"
        f" {rounds} off/on pairs"
    )
    for slo in (False, True):
        offs, ons = results[slo, False], results[slo, True]
        print(
            "  no SLO configured:" if not slo else "  one SLO configured (span views built anyway):"
        )
        for (off_cpu, _, _), (on_cpu, _, stored) in zip(offs, ons, strict=True):
            print(
                f"    off {off_cpu * 100:5.1f}% of one core, on {on_cpu * 100:5.1f}%:"
                f" {on_cpu / off_cpu:.3f}x; {stored / spans:.0f} bytes on disk per span"
            )
        ratios = [on[0] / off[0] for off, on in zip(offs, ons, strict=True)]
        print(
            f"    median {statistics.median(ratios):.3f}x the baseline's cpu"
            f" ({(statistics.median(ratios) - 1) * 100:+.1f}%);"
            f" rss off {max(o[1] for o in offs):.1f} MiB, on {max(o[1] for o in ons):.1f} MiB"
        )


if __name__ == "__main__":
    main()
