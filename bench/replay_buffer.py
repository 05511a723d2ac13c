"""The trace buffer's CPU per span, measured in-process (repeatable on a noisy machine).

Runs the pipeline's span pass (classify, enrich, observers) over the same 100-span requests
(10 traces each) as ``bench/ingest.py --replay-only``, with and without the replay engine's
span observer, then the buffer's writer work (serialise, secret scan, SQLite write in one
transaction per 50 requests), and prints process CPU microseconds per span and the ratio
against the pipeline alone, with no SLO and with one SLO observer present.

``python bench/replay_buffer.py [--rounds 20]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent_sre.replay.traces import INDEX_KEYS  # noqa: E402
from agent_sre.tracing.batch import TraceBatchProcessor  # noqa: E402
from agent_sre.tracing.view import CORE_KEYS  # noqa: E402
from agent_sre_daemon.replay.buffer import TraceBuffer  # noqa: E402
from agent_sre_daemon.replay.metrics import ReplayMetrics  # noqa: E402
from agent_sre_daemon.replay.store import Limits, TraceStore  # noqa: E402
from bench.ingest import mixed_request  # noqa: E402

SPANS = 100


def pass_cost(bodies: list[bytes], rounds: int, observers: list[object], keys: frozenset[str]
              ) -> float:  # fmt: skip
    processor = TraceBatchProcessor({"agent_sre.node": "bench"})
    processor.set_observers(observers, keys)  # type: ignore[arg-type]
    requests = [ExportTraceServiceRequest.FromString(b) for b in bodies * rounds]
    started = time.process_time()
    for request in requests:
        processor.process(request, 0.0)
    return (time.process_time() - started) / (len(requests) * SPANS) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    bodies = [mixed_request(SPANS, 10) for _ in range(50)]
    with tempfile.TemporaryDirectory() as tmp:
        store = TraceStore(Path(tmp) / "replay.sqlite", Limits(3600, 86400, 1 << 34))
        buffer = TraceBuffer(store, lambda: 0.0, ReplayMetrics(CollectorRegistry()))

        def slo(view: object, now: float) -> None:
            return None

        rows = []
        for label, base in (("no SLO", []), ("one SLO observer", [slo])):
            alone = pass_cost(bodies, args.rounds, list(base), CORE_KEYS)
            with_index = pass_cost(
                bodies, args.rounds, [*base, buffer.index.add], CORE_KEYS | INDEX_KEYS
            )
            buffer.index.take()
            rows.append((label, alone, with_index))
        requests = [ExportTraceServiceRequest.FromString(b) for b in bodies]
        processor = TraceBatchProcessor({"agent_sre.node": "bench"})
        processor.set_observers([buffer.index.add], CORE_KEYS | INDEX_KEYS)
        started = time.process_time()
        for _ in range(args.rounds):
            for request in requests:
                processor.process(request, 0.0)
                buffer.observe(request, 0.0)
            buffer.flush()
        total = (time.process_time() - started) / (args.rounds * len(requests) * SPANS) * 1e6
        index_only = rows[0][2]
        writer = total - index_only
        size = sum(p.stat().st_size for p in Path(tmp).glob("replay.sqlite*"))
        stored_spans = args.rounds * len(requests) * SPANS
        store.close()
    print(f"process CPU per span, 100-span requests of 10 traces, {args.rounds} rounds")
    for label, alone, with_index in rows:
        full = with_index + writer
        print(
            f"  {label:18} span pass {alone:6.2f} us; + trace index {with_index:6.2f} us;"
            f" + writer {full:6.2f} us = {full / alone:.2f}x the span pass"
        )
    print(f"  writer (serialise, secret scan, SQLite): {writer:.2f} us a span")
    print(f"  disk: {size / stored_spans:.0f} bytes per span")


if __name__ == "__main__":
    main()
