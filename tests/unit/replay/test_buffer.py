"""The trace buffer's writer: a failing store is counted and the writer goes on; a writer
that falls behind drops requests (counted) instead of holding the node up."""

from __future__ import annotations

import gc
import json
import threading
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client import CollectorRegistry

from agent_sre.replay.exchange import Exchange
from agent_sre.replay.redaction import Redactor
from agent_sre_daemon.replay import buffer as buffer_module
from agent_sre_daemon.replay.buffer import TraceBuffer
from agent_sre_daemon.replay.metrics import ReplayMetrics
from agent_sre_daemon.replay.store import Limits, TraceStore

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


class BrokenStore(TraceStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path, Limits(3600, 86400, 1 << 30))
        self.calls = 0
        self.failed = threading.Event()

    def write(self, batches, exchanges):  # type: ignore[no-untyped-def]
        self.calls += 1
        self.failed.set()
        raise OSError("disk full")


def test_a_failing_store_is_counted_and_the_writer_goes_on(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    store = BrokenStore(tmp_path / "r.sqlite")
    buffer = TraceBuffer(store, lambda: 0.0, ReplayMetrics(registry))
    buffer.start()
    buffer.observe(b"", 0.0)
    assert store.failed.wait(10)
    buffer.stop(10)
    assert buffer.failures >= 1
    assert registry.get_sample_value("agent_sre_replay_write_errors_total") >= 1


def test_a_writer_that_falls_behind_drops_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(buffer_module, "MAX_WAITING", 2)
    registry = CollectorRegistry()
    store = TraceStore(tmp_path / "r.sqlite", Limits(3600, 86400, 1 << 30))
    buffer = TraceBuffer(store, lambda: 0.0, ReplayMetrics(registry))  # not started
    for _ in range(5):
        buffer.observe(b"", 0.0)
    assert registry.get_sample_value("agent_sre_replay_dropped_requests_total") == 3


def test_captured_bodies_are_redacted_before_they_are_written(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "r.sqlite", Limits(3600, 86400, 1 << 30))
    buffer = TraceBuffer(store, lambda: 0.0, ReplayMetrics(CollectorRegistry()))
    buffer.capture(
        Exchange(
            "openai", "/openai", "openai", "POST", "/v1/x", query="key=sk-abcdefghijklmnopqrst",
            request=b'{"mail": "a@b.example"}', chunks=[(0.0, b"Bearer abc.def")],
            trace_id="ab" * 16,
        )
    )  # fmt: skip
    buffer.flush()
    (stored,) = store.exchanges("ab" * 16)
    assert stored.request == b'{"mail": "[REDACTED]"}'
    assert stored.chunks == [(0.0, b"[REDACTED]")]
    assert stored.query == "key=[REDACTED]"
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert b"a@b.example" not in raw and b"sk-abcdefghijklmnopqrst" not in raw


def test_another_engine_can_keep_a_trace_longer(tmp_path: Path) -> None:
    from agent_sre.replay.traces import summarize
    from agent_sre_daemon.replay.store import TraceQuery
    from tests.unit.replay.test_store_and_traces import request_of

    store = TraceStore(tmp_path / "r.sqlite", Limits(10.0, 1000.0, 1 << 30))
    buffer = TraceBuffer(store, lambda: 0.0, ReplayMetrics(CollectorRegistry()))
    request = request_of({"trace": 7, "span": 1})
    buffer.index.summaries = {s.trace_id.encode(): s for s in summarize(request)}
    buffer.observe(request.SerializeToString(), 0.0)
    buffer.mark((7).to_bytes(16, "big").hex(), 1 << 4)  # an incident names it
    buffer.flush()
    with store.lock:
        assert store.evict(now=100.0) == 0  # past retention, kept for the incident
        (trace,) = store.list_traces(TraceQuery())
        assert trace["kept_because"] == ["incident"]
        assert store.evict(now=2000.0) == 1


def test_secrets_in_span_strings_are_redacted_before_they_are_stored(tmp_path: Path) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest as Request,
    )

    from agent_sre.replay.traces import assemble, summarize
    from tests.unit.replay.test_store_and_traces import request_of

    registry = CollectorRegistry()
    store = TraceStore(tmp_path / "r.sqlite", Limits(3600, 86400, 1 << 30))
    buffer = TraceBuffer(store, lambda: 0.0, ReplayMetrics(registry))
    request = request_of(
        {"trace": 3, "span": 1, "attrs": {"gen_ai.prompt": "mail jo@example.com", "n": 5}}
    )
    event = request.resource_spans[0].scope_spans[0].spans[0].events.add(name="exception")
    event.attributes.add(key="msg").value.string_value = "key sk-abcdefghijklmnopqrstuv"
    nested = event.attributes.add(key="list").value.array_value.values.add()
    nested.string_value = "card 4111-1111-1111-1111"
    original = request.SerializeToString()
    buffer.index.summaries = {s.trace_id.encode(): s for s in summarize(request)}
    buffer.observe(request.SerializeToString(), 0.0)
    clean = request_of({"trace": 4, "span": 2})
    buffer.index.summaries = {s.trace_id.encode(): s for s in summarize(clean)}
    buffer.observe(clean.SerializeToString(), 0.0)
    buffer.flush()
    assert request.SerializeToString() == original  # the pipeline's request is untouched
    trace_id = (3).to_bytes(16, "big").hex()
    stored = assemble(store.batches(trace_id), trace_id)
    span = stored.resource_spans[0].scope_spans[0].spans[0]
    assert {a.key: a.value.string_value for a in span.attributes}["gen_ai.prompt"] == (
        "mail [REDACTED]"
    )
    assert isinstance(stored, Request)
    assert registry.get_sample_value("agent_sre_replay_redacted_requests_total") == 1
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    for secret in (b"jo@example.com", b"sk-abcdefghijklmnopqrstuv", b"4111-1111-1111-1111"):
        assert secret not in raw


def test_a_writer_that_falls_behind_drops_calls_past_the_bytes_it_may_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # captured calls waiting were unbounded: a loaded proxy queued minutes of bodies
    monkeypatch.setattr(buffer_module, "MAX_WAITING_BYTES", 3 * (1000 + 1024))
    registry = CollectorRegistry()
    store = TraceStore(tmp_path / "r.sqlite", Limits(3600, 86400, 1 << 30))
    buffer = TraceBuffer(store, lambda: 0.0, ReplayMetrics(registry))  # not started
    for n in range(5):
        buffer.capture(call(f"{n:032x}", request=b"x" * 1000))
    assert registry.get_sample_value("agent_sre_replay_dropped_calls_total") == 2
    buffer.observe(b"y" * 10, 0.0)  # a request needs room too
    assert registry.get_sample_value("agent_sre_replay_dropped_requests_total") == 1
    buffer.flush()  # written: room again
    assert [len(store.exchanges(f"{n:032x}")) for n in range(5)] == [1, 1, 1, 0, 0]
    buffer.capture(call("ff" * 16, request=b"x" * 1000))
    buffer.observe(b"y" * 10, 0.0)
    assert registry.get_sample_value("agent_sre_replay_dropped_calls_total") == 2
    assert registry.get_sample_value("agent_sre_replay_dropped_requests_total") == 1


def call(trace_id: str, **fields: Any) -> Exchange:
    return Exchange("openai", "/openai", "openai", "POST", "/v1/x", trace_id=trace_id, **fields)


SECRETS = [b"sk-proj-Zq81xWmB4tKd9LrP2vYc", b"jo@example.com", b"4111 1111 1111 1111"]
CALLS = st.builds(
    lambda secret, where, media, cut: (secret, where, media, cut),
    st.sampled_from([None] * 9 + SECRETS),  # mostly clean: a clean group is the fast path
    st.sampled_from(["path", "query", "error", "request", "answer"]),
    st.sampled_from(["application/json", "text/event-stream", "application/x-ndjson", ""]),
    st.integers(1, 20),
)


def a_call(n: int, secret: bytes | None, where: str, media: str, cut: int) -> Exchange:
    text = (secret or b"nothing here").decode()
    exchange = call(f"{n:032x}", content_type=media, request=b'{"q": "hi"}')
    if where == "answer" and media in ("text/event-stream", "application/x-ndjson"):
        key = text.encode()  # a key cut across two events of the stream
        events = [
            b'{"delta": {"content": "' + key[:cut] + b'"}}',
            b'{"delta": {"content": "' + key[cut:] + b'"}}',
        ]
        sep = b"\n\n" if media == "text/event-stream" else b"\n"
        prefix = b"data: " if media == "text/event-stream" else b""
        exchange.chunks = [(i * 0.1, prefix + e + sep) for i, e in enumerate(events)]
    elif where == "answer":
        exchange.chunks = [(0.0, b'{"a": "' + text.encode()[:cut]), (0.1, text.encode()[cut:])]
    elif where == "request":
        exchange.request = b'{"q": "' + text.encode() + b'"}'
    else:
        setattr(exchange, where, "v=" + text)
    return exchange


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(CALLS, min_size=1, max_size=150))
@example([(None, "path", "", 1)] * 70 + [(SECRETS[0], "answer", "text/event-stream", 7)])
def test_calls_redacted_by_group_are_those_redacted_one_by_one(
    tmp_path_factory: pytest.TempPathFactory, shapes: list[tuple[Any, ...]]
) -> None:
    # the writer scans many calls at a time and halves a group the scan finds something in,
    # going over the calls of a small one one by one: what it stores is what a call-by-call
    # redaction stores
    expected = [
        buffer_module.redacted(a_call(n, *shape), Redactor()) for n, shape in enumerate(shapes)
    ]
    store = TraceStore(tmp_path_factory.mktemp("r") / "r.sqlite", Limits(3600, 86400, 1 << 30))
    buffer = TraceBuffer(store, lambda: 0.0, ReplayMetrics(CollectorRegistry()))
    for n, shape in enumerate(shapes):
        buffer.capture(a_call(n, *shape))
    buffer.flush()
    for n, want in enumerate(expected):
        (got,) = store.exchanges(f"{n:032x}")
        assert (got.path, got.query, got.error, got.request, got.chunks) == (
            want.path, want.query, want.error, want.request, want.chunks,
        ), shapes[n]  # fmt: skip
        for secret in SECRETS:
            assert secret not in got.request + got.body
    store.close()


def test_many_calls_of_few_traces_in_one_write_count_each_call(tmp_path: Path) -> None:
    # rows go in a statement of many (one GIL hand-over a statement): a trace named twice
    # in one statement still adds both calls' bytes
    store = TraceStore(tmp_path / "r.sqlite", Limits(3600, 86400, 1 << 30))
    buffer = TraceBuffer(store, lambda: 0.0, ReplayMetrics(CollectorRegistry()))
    traces = [f"{n:032x}" for n in range(3)]
    for n in range(600):
        buffer.capture(call(traces[n % 3], request=b"z" * (n % 7), at=float(n)))
    buffer.flush()
    for trace_id in traces:
        calls = store.exchanges(trace_id)
        assert len(calls) == 200
        summary = store.trace_summary(trace_id)
        assert summary is not None and summary["calls_captured"] == 200
        stored = sum(
            len(json.dumps(c.to_json()).encode()) for c in calls
        )  # what the writer stored, call by call
        assert summary["stored_bytes"] == stored
    store.close()


# large parts are shared objects: an example of many costs references, not gigabytes
LARGE = [b"x" * n for n in (1_000, 700_000, 1_500_000, 4_200_000)]
ITEMS = st.lists(
    st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.sampled_from(SECRETS),
            st.sampled_from(LARGE),  # up to past SCAN_BYTES in one item
        ),
        min_size=1,
        max_size=3,
    ),
    max_size=300,
)


@settings(max_examples=200, deadline=None)
@given(ITEMS)
@example([[b"a"]] * 5 + [[SECRETS[0]]] + [[b"b"]] * 3)  # one inside a small group, not first
@example([[b"a"]] * 40 + [[b"c", SECRETS[2]]] + [[LARGE[3]]] + [[SECRETS[1]]])
def test_flagged_finds_every_item_a_pass_would_in_few_passes(items: list[list[bytes]]) -> None:
    redactor = Redactor()
    passes: list[int] = []

    def finds_in(parts: list[bytes]) -> bool:
        passes.append(sum(len(p) for p in parts))
        return redactor.finds_in(parts)

    flags = buffer_module.flagged(finds_in, items)
    holds = [redactor.finds_in(item) for item in items]
    # nothing that holds a credential goes unflagged (a flagged clean item only costs a pass)
    assert all(flag for flag, held in zip(flags, holds, strict=True) if held)
    # a pass looks over at most SCAN_BYTES, unless one item alone is larger
    biggest = max((sum(len(p) for p in item) for item in items), default=0)
    assert all(size <= max(buffer_module.SCAN_BYTES, biggest) for size in passes)
    total = sum(sum(len(p) for p in item) for item in items)
    groups = -(-total // buffer_module.SCAN_BYTES) * 2 + 1  # packing leaves at most half empty
    dirty = sum(holds)
    levels = max(1, len(items)).bit_length()
    assert len(passes) <= groups + 2 * dirty * levels
    if not dirty:
        assert not any(flags)


def span_request(n: int, secret: bool) -> bytes:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id = n.to_bytes(16, "big"), n.to_bytes(8, "big")
    span.name = "call " + (SECRETS[0].decode() if secret else "plain")
    return request.SerializeToString()


def test_a_flush_leaves_nothing_for_the_garbage_collector(tmp_path: Path) -> None:
    # what the writer builds a flush (the scan's groups, redacted streams, rows) goes with
    # its last reference: a cycle (a recursive closure held them) kept a flush's bodies
    # until the collector ran, and gave it work on a loaded node
    store = TraceStore(tmp_path / "r.sqlite", Limits(3600, 86400, 1 << 30))
    buffer = TraceBuffer(store, lambda: 0.0, ReplayMetrics(CollectorRegistry()))
    shapes = [(None, "path", "", 1)] * 40 + [
        (SECRETS[0], "answer", "text/event-stream", 7),
        (SECRETS[1], "request", "application/json", 3),
        (None, "answer", "application/x-ndjson", 2),
    ]
    buffer.flush()  # the store's first statements are prepared (and cached) here
    gc.collect()
    gc.disable()
    try:
        for n, shape in enumerate(shapes * 3):
            buffer.capture(a_call(n, *shape))
            buffer.observe(span_request(n, secret=n % 2 == 1), float(n))
        buffer.flush()
        assert gc.collect() == 0
    finally:
        gc.enable()
    assert store.exchanges(f"{1:032x}")
    store.close()
