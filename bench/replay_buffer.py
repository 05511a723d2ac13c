"""The trace buffer's CPU per span, measured in-process (repeatable on a noisy machine).

Runs the pipeline's span pass (classify, enrich, observers) over the same 100-span requests
(10 traces each) as ``bench/ingest.py --replay-only``, with and without the replay engine's
span tap, then the buffer's writer work (secret scan, SQLite write in one transaction per 50
requests; the bytes are the ones the pipeline serialises for the upstream queue anyway), and
prints process CPU microseconds per span and the ratio against the pipeline alone, with no SLO
and with one SLO observer present.

``python bench/replay_buffer.py [--rounds 20]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client import CollectorRegistry

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import json  # noqa: E402

import re2  # noqa: E402

from agent_sre.replay.redaction import _CARD, DEFAULT_PATTERNS, _re2_form  # noqa: E402
from agent_sre.replay.streams import redact_chunks  # noqa: E402
from agent_sre.replay.traces import INDEX_KEYS  # noqa: E402
from agent_sre.tracing.batch import TraceBatchProcessor  # noqa: E402
from agent_sre_daemon.replay.buffer import TraceBuffer  # noqa: E402
from agent_sre_daemon.replay.metrics import ReplayMetrics  # noqa: E402
from agent_sre_daemon.replay.store import Limits, TraceStore  # noqa: E402
from bench.ingest import mixed_request  # noqa: E402

SPANS = 100

SHAPES_ONLY = re2.compile(
    b"|".join(b"(?:" + _re2_form(p) + b")" for p in DEFAULT_PATTERNS) + b"|(" + _CARD.pattern + b")"
)
"""The pre-scan before credentials were also found by name (shapes and cards only): the
baseline the scan's cost is compared with, in the same run."""


def shapes_only(data: bytes) -> bool:
    return SHAPES_ONLY.search(data) is not None


def sse_answer(events: int) -> list[tuple[float, bytes]]:
    """A streamed chat answer of ``events`` events, one word each, a few events a chunk."""
    body = b"".join(
        b"data: "
        + json.dumps(
            {"id": "c1", "choices": [{"index": 0, "delta": {"content": f" w{i}"}}]}
        ).encode()
        + b"\n\n"
        for i in range(events)
    )
    return [(i * 0.01, body[at : at + 512]) for i, at in enumerate(range(0, len(body), 512))]


def fresh(bodies: list[bytes]) -> list[ExportTraceServiceRequest]:
    """New copies: the pass writes into the requests (a second pass would find kinds set)."""
    return [ExportTraceServiceRequest.FromString(b) for b in bodies]


def timed(work: Callable[..., object], *args: object) -> float:
    started = time.process_time()
    work(*args)
    return time.process_time() - started


def run(processor: TraceBatchProcessor, requests: list[ExportTraceServiceRequest]) -> None:
    for request in requests:
        processor.process(request, 0.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    bodies = [mixed_request(SPANS, 10) for _ in range(50)]
    spans = len(bodies) * SPANS

    def slo(view: object, now: float) -> None:
        return None

    with tempfile.TemporaryDirectory() as tmp:
        store = TraceStore(Path(tmp) / "replay.sqlite", Limits(3600, 86400, 1 << 34))
        buffer = TraceBuffer(store, lambda: 0.0, ReplayMetrics(CollectorRegistry()))
        cases = []
        for label, base in (("no SLO", []), ("one SLO observer", [slo])):
            alone = TraceBatchProcessor({"agent_sre.node": "bench"})
            alone.set_observers(list(base), frozenset())
            tapped = TraceBatchProcessor({"agent_sre.node": "bench"})
            tapped.set_observers(list(base), INDEX_KEYS, [buffer.index.tap])
            cases.append((label, alone, tapped))
        best: dict[str, float] = {}

        def keep(name: str, seconds: float) -> None:
            best[name] = min(best.get(name, float("inf")), seconds / spans * 1e6)

        # rounds interleave every variant, so a busy moment of the machine hits them all;
        # the best round of each is its figure
        for _ in range(args.rounds):
            bodies = [mixed_request(SPANS, 10) for _ in range(50)]  # new traces each round
            for label, alone, tapped in cases:
                requests = fresh(bodies)
                keep(f"{label} alone", timed(run, alone, requests))
                requests = fresh(bodies)
                keep(f"{label} tap", timed(run, tapped, requests))
                # the pipeline serialises each request once for the upstream queue, with or
                # without the buffer: the buffer is handed those bytes
                serialised = [r.SerializeToString() for r in requests]
                for body in serialised:
                    buffer.observe(body, 0.0)  # (the first takes every summary)
                keep("writer", timed(buffer.flush))
                keep("scan", timed(lambda b: [buffer.redactor.finds(x) for x in b], serialised))
                keep("scan before", timed(lambda b: [shapes_only(x) for x in b], serialised))
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
        stored_spans = int(store._db.execute("SELECT sum(spans) FROM traces").fetchone()[0])
        store.close()
        flagged = sum(buffer.redactor.finds(b) for b in bodies)
        answer = sse_answer(300)
        started = time.process_time()
        for _ in range(20):
            redact_chunks(answer, buffer.redactor, "text/event-stream")
        stream_us = (time.process_time() - started) / 20 * 1e6
        worst = b"a" * 262144 + b" sk-proj-abcdefghijklmnopqrstuvwxyz key=v"
        started = time.process_time()
        buffer.redactor.redact(worst)
        worst_ms = (time.process_time() - started) * 1e3
    writer = best["writer"]
    print(f"process CPU per span, 100-span requests of 10 traces, best of {args.rounds} rounds")
    for label, _, _ in cases:
        alone, tap = best[f"{label} alone"], best[f"{label} tap"]
        print(
            f"  {label:18} span pass {alone:6.2f} us; + trace index {tap:6.2f} us;"
            f" + writer {tap + writer:6.2f} us = {(tap + writer) / alone:.2f}x the span pass"
        )
    print(f"  writer {writer:.2f} us a span (secret scan {best['scan']:.2f}, SQLite the rest)")
    print(f"  disk: {size / stored_spans:.0f} bytes per span")
    print(
        f"  secret pre-scan {best['scan']:.3f} us a span, by shape only (before) "
        f"{best['scan before']:.3f} us: {best['scan'] / best['scan before']:.2f}x;"
        f" requests flagged for field-by-field redaction: {flagged} of {len(bodies)}"
    )
    print(
        f"  a captured 300-event SSE answer reassembled and redacted on the writer thread:"
        f" {stream_us:.0f} us"
    )
    print(f"  a 256 KiB body of one run of letters and a key, redacted: {worst_ms:.1f} ms")


if __name__ == "__main__":
    main()
