"""The span pass in-process: the Python pass (decode, pass, serialise) against the native
pass over the same request bytes, with pricing only (no SLO, no tap) and with the engines a
default node runs (an SLO-like observer, the trace index's tap, a task hook).

``python bench/span_pass_wire.py`` prints the best of ``--trials`` process-CPU figures per
span of each case and the ratio. ``--mode MODE --requests N`` runs one case N times and
nothing else, for an instruction count that a shared machine's load does not move:
``valgrind --tool=cachegrind --cache-sim=no python bench/span_pass_wire.py --mode native-engines
--requests 12`` minus the same with ``--requests 2``, over 10 x 512 spans.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
)

from agent_sre.cost.pricing import Pricer  # noqa: E402
from agent_sre.cost.span_cost import PRICING_KEYS, SpanCostEnricher  # noqa: E402
from agent_sre.replay.traces import INDEX_KEYS, TraceIndex  # noqa: E402
from agent_sre.tracing.batch import NATIVE, TraceBatchProcessor  # noqa: E402
from agent_sre.tracing.view import CORE_KEYS  # noqa: E402
from tests.support.spans import make_request  # noqa: E402

SPANS = 512
MODES = ("python-pricing", "native-pricing", "python-engines", "native-engines", "decode")


def runner(mode: str, body: bytes):  # type: ignore[no-untyped-def]
    processor = TraceBatchProcessor(
        {"agent_sre.node": "bench"},
        llm_enrichers=[SpanCostEnricher(Pricer())],
        enricher_keys=PRICING_KEYS,
    )
    index = TraceIndex()
    if mode.endswith("engines"):
        processor.set_observers([lambda view, now: None], CORE_KEYS | INDEX_KEYS, [index.tap])
        processor.task_hooks.append(lambda view, now: None)

    def python() -> None:
        request = ExportTraceServiceRequest.FromString(body)
        processor.process(request, 1.76e9)
        request.SerializeToString()
        index.take()

    def native() -> None:
        ExportTraceServiceRequest.FromString(body)  # the receiver's validation
        processor.process_wire(body, 1.76e9)
        index.take()

    if mode == "decode":
        return lambda: ExportTraceServiceRequest.FromString(body)
    return native if mode.startswith("native") else python


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=MODES)
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--trials", type=int, default=15)
    args = parser.parse_args()
    if not NATIVE:
        raise SystemExit("the native span pass is not built")
    body = make_request(SPANS).SerializeToString()
    if args.mode:
        run = runner(args.mode, body)
        for _ in range(args.requests):
            run()
        return
    best: dict[str, float] = {}
    for _ in range(args.trials):
        for mode in MODES:
            run = runner(mode, body)
            run()  # warm (price lookups memoised)
            started = time.process_time()
            for _ in range(args.requests):
                run()
            spent = (time.process_time() - started) / args.requests / SPANS * 1e6
            best[mode] = min(best.get(mode, spent), spent)
    print(f"{SPANS}-span requests (make_request), best of {args.trials}, process CPU per span:")
    for mode in MODES:
        print(f"  {mode:16} {best[mode]:6.2f} us")
    for what in ("pricing", "engines"):
        ratio = best[f"native-{what}"] / best[f"python-{what}"]
        print(f"  native / python, {what}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
