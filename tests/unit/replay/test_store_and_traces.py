"""The trace buffer's store (eviction by age and size, interesting traces kept longer),
trace splitting and assembly, OTLP/JSON, span trees and the diff of two runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from agent_sre.replay.cassette import Cassette, CassetteError, loads
from agent_sre.replay.diff import diff_traces
from agent_sre.replay.exchange import Exchange
from agent_sre.replay.traces import (
    assemble,
    from_otlp_json,
    span_tree,
    summarize,
    to_otlp_json,
)
from agent_sre_daemon.replay.store import Batch, Limits, TraceQuery, TraceStore

if TYPE_CHECKING:
    from pathlib import Path

import pytest

HOUR = 3600.0


def request_of(*spans: dict[str, object]) -> ExportTraceServiceRequest:
    """One request; each span: trace (int), span (int), parent, name, attrs, error, start."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name").value.string_value = "svc"
    scope = resource_spans.scope_spans.add()
    for spec in spans:
        span = scope.spans.add()
        span.trace_id = int(spec["trace"]).to_bytes(16, "big")  # type: ignore[call-overload]
        span.span_id = int(spec["span"]).to_bytes(8, "big")  # type: ignore[call-overload]
        if spec.get("parent"):
            span.parent_span_id = int(spec["parent"]).to_bytes(8, "big")  # type: ignore[call-overload]
        span.name = str(spec.get("name", "work"))
        start = int(spec.get("start", 1_000_000_000))  # type: ignore[call-overload]
        span.start_time_unix_nano = start
        span.end_time_unix_nano = start + int(spec.get("took", 1_000_000))  # type: ignore[call-overload]
        for key, value in dict(spec.get("attrs", {})).items():  # type: ignore[call-overload]
            item = span.attributes.add(key=key)
            if isinstance(value, str):
                item.value.string_value = value
            elif isinstance(value, int):
                item.value.int_value = value
            else:
                item.value.double_value = value
        if spec.get("error"):
            span.status.code = Status.STATUS_CODE_ERROR
    return request


def store_at(tmp_path: Path, max_bytes: int = 10_000_000) -> TraceStore:
    return TraceStore(tmp_path / "replay.sqlite", Limits(HOUR, 24 * HOUR, max_bytes))


def put(store: TraceStore, request: ExportTraceServiceRequest, at: float) -> None:
    summaries = summarize(request)
    batch = Batch(request.SerializeToString(), at, summaries, sum(s.spans for s in summaries))
    with store.lock:
        store.write([batch], [])


def test_a_request_is_indexed_by_trace_and_a_trace_put_back_together() -> None:
    request = request_of(
        {"trace": 1, "span": 1, "name": "root", "attrs": {"agent.id": "a1"}},
        {"trace": 2, "span": 2, "name": "other"},
        {"trace": 1, "span": 3, "parent": 1, "start": 2_000_000_000,
         "attrs": {"agent.span.kind": "TOOL_CALL"}},
    )  # fmt: skip
    summaries = {s.trace_id: s for s in summarize(request)}
    one_id = (1).to_bytes(16, "big").hex()
    one = summaries[one_id]
    assert one.spans == 2 and one.root == "root" and one.agent == "a1"
    assert summaries[(2).to_bytes(16, "big").hex()].spans == 1
    whole = assemble([request.SerializeToString()], one_id)
    assert sorted(s.name for r in whole.resource_spans for ss in r.scope_spans
                  for s in ss.spans) == ["root", "work"]  # fmt: skip
    as_json = to_otlp_json(whole)
    span = as_json["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span["traceId"] == "0" * 31 + "1"  # hex, as OTLP/JSON says
    assert from_otlp_json(as_json) == whole


def test_the_size_cap_evicts_the_oldest_while_interesting_traces_stay(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    big = "x" * 2000
    put(store, request_of({"trace": 1, "span": 1, "error": True, "attrs": {"p": big}}), 100.0)
    fault = {"agent_sre.chaos.fault": "latency", "p": big}
    put(store, request_of({"trace": 2, "span": 2, "attrs": fault}), 101.0)
    for n in range(3, 13):
        put(store, request_of({"trace": n, "span": n, "attrs": {"p": big}}), 100.0 + n)
    store.limits = Limits(HOUR, 24 * HOUR, store.size_bytes // 2)
    with store.lock:
        evicted = store.evict(now=120.0)
    assert evicted > 0
    assert store.size_bytes <= store.limits.max_bytes
    with store.lock:
        kept = {int(t["trace_id"], 16) for t in store.list_traces(TraceQuery(limit=100))}
    assert {1, 2} <= kept  # interesting ones stay
    assert 3 not in kept and 12 in kept  # the oldest ordinary ones went first
    reasons = {int(t["trace_id"], 16): t["kept_because"] for t in store.list_traces(TraceQuery())}
    assert reasons[1] == ["error"] and reasons[2] == ["chaos_fault"]
    store.close()
    # the count survives a restart
    again = store_at(tmp_path)
    assert again.size_bytes > 0
    again.close()


def test_retention_keeps_interesting_traces_longer(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    put(store, request_of({"trace": 1, "span": 1}), 0.0)
    put(store, request_of({"trace": 2, "span": 2, "attrs": {"error.type": "budget_exceeded"}}),
        0.0)  # fmt: skip
    with store.lock:
        assert store.evict(now=HOUR - 1) == 0
        assert store.evict(now=HOUR + 1) == 1
        left = store.list_traces(TraceQuery())
        assert [t["kept_because"] for t in left] == [["error", "refusal"]]
        assert store.evict(now=24 * HOUR + 1) == 1
        assert store.list_traces(TraceQuery()) == []
        assert store.size_bytes == 0
    store.close()


def test_queries_filter_by_agent_time_status_and_kind(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    s = 1_000_000_000
    put(
        store,
        request_of(
            {
                "trace": 1,
                "span": 1,
                "start": 10 * s,
                "attrs": {"agent.id": "a", "agent.span.kind": "AGENT_TASK"},
            }
        ),
        1.0,
    )
    put(
        store,
        request_of(
            {
                "trace": 2,
                "span": 2,
                "start": 20 * s,
                "error": True,
                "attrs": {"agent.id": "b", "agent.span.kind": "TOOL_CALL"},
            }
        ),
        2.0,
    )
    # fmt: skip
    with store.lock:

        def ids(**query: object) -> list[int]:
            found = store.list_traces(TraceQuery(**query))  # type: ignore[arg-type]
            return [int(t["trace_id"], 16) for t in found]

        assert ids() == [2, 1]
        assert ids(agent="a") == [1]
        assert ids(errors_only=True) == [2]
        assert ids(kind="TOOL_CALL") == [2]
        assert ids(since=15.0) == [2]
        assert ids(until=15.0) == [1]
        assert ids(limit=1) == [2]
    store.close()


def run(prompt_tokens: int, tool: str = "search", error: bool = False) -> ExportTraceServiceRequest:
    return request_of(
        {"trace": 1, "span": 1, "name": "agent", "attrs": {"agent.span.kind": "AGENT_TASK"}},
        {"trace": 1, "span": 2, "parent": 1, "name": "chat gpt-4o", "start": 1_100_000_000,
         "attrs": {"agent.span.kind": "LLM_INFERENCE", "gen_ai.request.model": "gpt-4o",
                   "gen_ai.usage.input_tokens": prompt_tokens}},
        {"trace": 1, "span": 3, "parent": 1, "name": f"execute_tool {tool}", "error": error,
         "start": 1_200_000_000, "attrs": {"agent.span.kind": "TOOL_CALL"}},
    )  # fmt: skip


def test_the_diff_of_a_run_against_itself_is_empty_and_names_changes() -> None:
    a = span_tree(run(10))
    assert diff_traces(a, span_tree(run(10))) == []
    changes = [str(c) for c in diff_traces(a, span_tree(run(12, tool="browse", error=True)))]
    assert "AGENT_TASK:agent/LLM_INFERENCE:chat gpt-4o: input tokens 10 -> 12" in changes
    assert (
        "AGENT_TASK:agent/TOOL_CALL:execute_tool search: name 'execute_tool search' -> "
        "'execute_tool browse'" in changes
    )
    assert any("error None -> 'error'" in c for c in changes)


def test_a_cassette_round_trips_and_bad_ones_say_why() -> None:
    exchange = Exchange("openai", "/openai", "openai", "POST", "/v1/x", request=b"\xff\x00",
                        status=200, chunks=[(0.1, b"data: 1\n\n")], streamed=True)  # fmt: skip
    cassette = Cassette("ab" * 16, [exchange], {"resourceSpans": []})
    again = loads(cassette.dumps())
    assert again.exchanges == [exchange] and again.trace_id == "ab" * 16
    for text, words in [
        ("{", "not JSON"),
        ("{}", "not an agent-sre cassette"),
        ('{"format": "agent-sre-cassette", "version": 9}', "version 9"),
        ('{"format": "agent-sre-cassette", "version": 1, "exchanges": [{"route": 1}]}',
         r"exchanges\[0\]: bad or missing field .prefix."),
    ]:  # fmt: skip
        with pytest.raises(CassetteError, match=words):
            loads(text, "c.json")
