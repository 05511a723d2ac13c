"""Both span passes side by side: the Python reference (:meth:`process`) and the native pass
over the wire bytes (:meth:`process_wire`), each with its own processor and recorders, so a
test (or the fuzz harness) can assert they see and forward the same things."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agent_sre.cost.pricing import Pricer
from agent_sre.cost.span_cost import PRICING_KEYS, SpanCostEnricher
from agent_sre.replay.traces import INDEX_KEYS, TraceIndex
from agent_sre.tracing import conventions as c
from agent_sre.tracing.batch import TraceBatchProcessor
from agent_sre.tracing.enrich import add_string_attribute
from agent_sre.tracing.view import CORE_KEYS
from agent_sre.tracing.wirespan import append_attribute

if TYPE_CHECKING:
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    from agent_sre.tracing.batch import BatchResult
    from agent_sre.tracing.view import AgentSpan

NODE = {"agent_sre.node": "node-a", "k8s.node.name": "kn", "k8s.pod.name": "pod"}
NOW = 1_760_000_000.0


def _snapshot(view: AgentSpan) -> tuple[Any, ...]:
    return (
        view.kind,
        view.explicit_kind,
        view.name,
        view.trace_id,
        view.span_id,
        view.start_ns,
        view.end_ns,
        view.is_error,
        tuple(sorted(view.attrs.items(), key=lambda kv: kv[0])),
    )


@dataclass
class Recorder:
    """Everything one pass showed its engines, in order."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    index: TraceIndex = field(default_factory=TraceIndex)
    unpriced: list[str] = field(default_factory=list)

    def observe(self, view: AgentSpan, now: float) -> None:
        self.calls.append(("observe", *_snapshot(view)))

    def tap(self, view: AgentSpan, now: float) -> None:
        self.calls.append(("tap", *_snapshot(view)))
        self.index.tap(view, now)

    def hook(self, view: AgentSpan, now: float) -> None:
        self.calls.append(("task", view.trace_id, view.start_ns, view.end_ns))

    def marker(self, span: Span, view: AgentSpan, now: float) -> None:
        """An enricher that writes like linking does (one span in four marked a duplicate,
        through the protobuf) or like pricing does (one in four gets an attribute
        appended)."""
        self.calls.append(("enrich", *_snapshot(view)))
        which = hashlib.blake2b(view.span_id, digest_size=1).digest()[0] % 4
        if which == 0:
            add_string_attribute(span.attributes, c.AGENT_SRE_ROLE, c.ROLE_DUPLICATE)
            view.attrs[c.AGENT_SRE_ROLE] = c.ROLE_DUPLICATE
        elif which == 1:
            append_attribute(span, "x.marked", -len(view.name) - 1)


def processor(recorder: Recorder, engines: bool = True) -> TraceBatchProcessor:
    """The daemon's span pass with pricing, and (``engines``) an SLO-like observer, the
    trace index's tap, a task hook and linking-like enrichers."""
    cost = SpanCostEnricher(Pricer(), recorder.unpriced.append)
    processor = TraceBatchProcessor(NODE, llm_enrichers=[cost], enricher_keys=PRICING_KEYS)
    if engines:
        processor.add_enricher(recorder.marker, frozenset({c.AGENT_SRE_ROLE}), first=True)
        processor.add_tool_enricher(recorder.marker, frozenset({c.GEN_AI_TOOL_NAME}))
        processor.task_hooks.append(recorder.hook)
        processor.set_observers(
            [recorder.observe], CORE_KEYS | frozenset({"x"}) | INDEX_KEYS, [recorder.tap]
        )
    return processor


@dataclass
class Outcome:
    result: BatchResult
    forwarded: ExportTraceServiceRequest
    recorder: Recorder
    summaries: list[Any]


def python_pass(body: bytes, engines: bool = True) -> Outcome:
    recorder = Recorder()
    request = ExportTraceServiceRequest.FromString(body)
    result = processor(recorder, engines).process(request, NOW)
    forwarded = ExportTraceServiceRequest.FromString(request.SerializeToString())
    return Outcome(result, forwarded, recorder, recorder.index.take())


def native_pass(body: bytes, engines: bool = True) -> Outcome:
    recorder = Recorder()
    result, forwarded = processor(recorder, engines).process_wire(body, NOW)
    decoded = ExportTraceServiceRequest.FromString(forwarded)
    return Outcome(result, decoded, recorder, recorder.index.take())


def assert_same(body: bytes, engines: bool = True) -> None:
    """Both passes over ``body`` (a request protobuf accepts) agree on everything."""
    reference = python_pass(body, engines)
    native = native_pass(body, engines)
    assert native.result == reference.result
    assert native.recorder.calls == reference.recorder.calls
    assert native.recorder.unpriced == reference.recorder.unpriced
    assert native.summaries == reference.summaries
    # compared as bytes: NaN attribute values make equal messages compare unequal
    assert native.forwarded.SerializeToString(
        deterministic=True
    ) == reference.forwarded.SerializeToString(deterministic=True), (
        native.forwarded,
        reference.forwarded,
    )
