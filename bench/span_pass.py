"""The span pass's CPU per span with one-call correlation off, on and idle, on with calls pending
(LLM calls, and tool calls when a proxy route is a tool).

Runs the pipeline's span pass (``TraceBatchProcessor.process``: classify, correlate, price)
in-process over 512-span requests of mixed agent kinds (``tests.support.spans.make_request``:
2 LLM spans in 7, half of them ``gpt-4o-mini``; 1 tool span in 7), each request parsed afresh
outside the timing, with the default configuration and the correlation states built side by
side:

- ``off``: ``proxy.correlation.enabled: false`` (the baseline of the ratios);
- ``off + link keys``: the same, decoding the attributes correlation reads as well
  (``LINK_KEYS``: the caller's identity is on every span of the mix, ``agent.id`` and
  ``agent.task.id``), to tell the cost of reading them from the cost of the matching;
- ``on, idle``: correlation on, no proxied call known (the ingest-only case: nothing can
  link, every agent LLM span is remembered for a proxy record that may come later);
- ``on, pending``: correlation on with ``--pending`` proxied ``gpt-4o-mini`` calls held,
  inside the time of the agents' spans but of other token usage, so every ``gpt-4o-mini``
  span is checked against each of them and links to none (a worst case of the scan);
- ``tools, idle``: correlation on and a proxy route of ``api: tool`` (so agents' tool spans
  are linked too), no proxied call known;
- ``tools, pending``: the same with ``--pending`` proxied ``search`` tool calls (the mix's
  tool) held inside the agents' spans but by another agent, so every tool span is checked
  against each of them and links to none.

With ``--observer`` every state has one span observer reading the view's core keys, as an
SLO would (the identity keys are then decoded with or without correlation).

Trials of the states are interleaved (the machine's noise falls on all of them) after a
warm-up that fills the remembered agent spans to ``max_calls``; the best trial of each
state is printed in process-CPU microseconds per span (and per LLM span, the difference
against ``off``; for the tool states per tool span, the difference against the same state
without a tool route), with the ratios against ``off`` of the same run.

``python bench/span_pass.py [--trials 15] [--requests 8] [--pending 16] [--observer]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent_sre.config import Config  # noqa: E402
from agent_sre.tracing.linking import LINK_KEYS  # noqa: E402
from agent_sre.tracing.view import CORE_KEYS  # noqa: E402
from agent_sre_daemon.ingest.correlation import CallCorrelation  # noqa: E402
from tests.support.context import node_context  # noqa: E402
from tests.support.spans import make_request, set_value  # noqa: E402

SPANS = 512
BODIES = 4
MODES = ("off", "off + link keys", "on, idle", "on, pending", "tools, idle", "tools, pending")
TOOL_ROUTE = {
    "name": "search",
    "prefix": "/search",
    "upstream": "http://127.0.0.1:9",
    "api": "tool",
}


def proxy_record(trace: int, start_ns: int, end_ns: int) -> ExportTraceServiceRequest:
    """The proxy's span of a call the agents' spans do not describe (other token usage)."""
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = (0xBE_0000 + trace).to_bytes(16, "big")
    span.span_id = (0xBE_0000 + trace).to_bytes(8, "big")
    span.name = "chat gpt-4o-mini"
    span.start_time_unix_nano = start_ns
    span.end_time_unix_nano = end_ns
    for key, value in {
        "agent.span.kind": "LLM_INFERENCE",
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 7000 + trace,
        "gen_ai.usage.output_tokens": 70,
        "agent_sre.proxy.route": "openai",
    }.items():
        set_value(span.attributes.add(key=key), value)
    return request


def proxy_tool_record(trace: int, start_ns: int, end_ns: int) -> ExportTraceServiceRequest:
    """The proxy's span of a ``search`` call by an agent none of the mix's spans is."""
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = (0xDE_0000 + trace).to_bytes(16, "big")
    span.span_id = (0xDE_0000 + trace).to_bytes(8, "big")
    span.name = "execute_tool search"
    span.start_time_unix_nano = start_ns
    span.end_time_unix_nano = end_ns
    for key, value in {
        "agent.span.kind": "TOOL_CALL",
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "search",
        "agent.id": "elsewhere",
        "agent_sre.proxy.route": "search",
    }.items():
        set_value(span.attributes.add(key=key), value)
    return request


def observe(view: object, now: float) -> None:
    return None


async def build(
    mode: str, pending: int, start_ns: int, end_ns: int, observer: bool
) -> tuple[object, object]:
    config = Config()
    if mode.startswith("tools"):
        config = Config.model_validate(
            {"proxy": {"routes": [*(r.model_dump() for r in config.proxy.routes), TOOL_ROUTE]}}
        )
    if mode.startswith("off"):
        config = config.model_copy(
            update={
                "proxy": config.proxy.model_copy(
                    update={
                        "correlation": config.proxy.correlation.model_copy(
                            update={"enabled": False}
                        )
                    }
                )
            }
        )
    context = node_context(config)
    processor = context.pipeline.processor
    if observer:
        processor.set_observers([observe], CORE_KEYS)
    correlation = CallCorrelation(context)
    await correlation.start()
    if mode == "off + link keys":
        processor.wanted = processor.wanted | LINK_KEYS
    if mode == "on, pending":
        for trace in range(pending):
            correlation.offer(proxy_record(trace, start_ns, end_ns))
        assert correlation.correlator.held_count == pending, "the proxy's records must be held"
    if mode == "tools, pending":
        for trace in range(pending):
            correlation.offer(proxy_tool_record(trace, start_ns, end_ns))
        assert correlation.tools.held_count == pending, "the proxy's records must be held"
    return processor, correlation


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--requests", type=int, default=8, help="requests of 512 spans a trial")
    parser.add_argument("--pending", type=int, default=16)
    parser.add_argument("--observer", action="store_true", help="one span observer (an SLO's)")
    args = parser.parse_args()
    templates = [make_request(SPANS) for _ in range(BODIES)]
    first = templates[0].resource_spans[0].scope_spans[0].spans[0]
    bodies = [t.SerializeToString() for t in templates]
    llm = sum(
        1
        for t in templates
        for span in t.resource_spans[0].scope_spans[0].spans
        if any(kv.key in ("gen_ai.request.model", "llm.model_name") for kv in span.attributes)
    ) / len(templates)
    # the proxy's calls happen inside the agents' spans (which last 5 ms)
    start_ns, end_ns = first.start_time_unix_nano + 1_000_000, first.end_time_unix_nano - 1_000_000
    passes = {
        mode: await build(mode, args.pending, start_ns, end_ns, args.observer) for mode in MODES
    }
    now = 1_700_000_000.0

    def run(mode: str, count: int) -> float:
        processor = passes[mode][0]
        requests = [ExportTraceServiceRequest.FromString(bodies[i % BODIES]) for i in range(count)]
        started = time.process_time()
        for request in requests:
            processor.process(request, now)  # type: ignore[attr-defined]
        return (time.process_time() - started) / (count * SPANS) * 1e6

    tool = sum(
        1
        for t in templates
        for span in t.resource_spans[0].scope_spans[0].spans
        if any(kv.key == "gen_ai.tool.name" for kv in span.attributes)
    ) / len(templates)
    warm_up = 10_000 // int(min(llm, tool)) + 2  # the remembered agent spans reach max_calls
    for mode in MODES:
        run(mode, warm_up)
    trials: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(args.trials):
        for mode in MODES:
            trials[mode].append(run(mode, args.requests))
    for mode in MODES:
        correlation = passes[mode][1]
        assert correlation.correlator.held_count == (  # type: ignore[attr-defined]
            args.pending if mode == "on, pending" else 0
        ), "a pending call was linked: the benchmark no longer measures a miss"
        assert correlation.tools.held_count == (  # type: ignore[attr-defined]
            args.pending if mode == "tools, pending" else 0
        ), "a pending tool call was linked: the benchmark no longer measures a miss"
    base = min(trials["off"])
    print(
        f"span pass, {SPANS}-span requests ({llm:.0f} LLM spans, {tool:.0f} tool spans),"
        f" {args.requests} requests a trial, best of {args.trials} (median), process CPU;"
        f" pending: {args.pending} held;"
        f" {'one span observer' if args.observer else 'no span observer'}"
    )
    for mode in MODES:
        best = min(trials[mode])
        # the difference per span of the kind the mode adds work to
        per, what = (tool, "tool") if mode.startswith("tools") else (llm, "LLM")
        if mode.startswith("tools"):
            best_on = min(trials["on, idle" if mode.endswith("idle") else "on, pending"])
            extra = f"  {best / best_on:5.3f}x on without tool routes"
        else:
            best_on, extra = base, ""
        print(
            f"  correlation {mode:16} {best:6.2f} us/span ({statistics.median(trials[mode]):5.2f})"
            f"  {best / base:5.3f}x off  {(best - best_on) * SPANS / per:+6.2f} us per {what}"
            f" span{extra}"
        )


if __name__ == "__main__":
    asyncio.run(main())
