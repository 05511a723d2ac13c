"""Class 2 of issue 18, in the core: one JSON reader for every body from outside (size and
depth bounded, RecursionError never escapes), span trees walked without recursion (a
1,500-span parent chain is shown and diffed), and cassettes validated on load."""

from __future__ import annotations

import ast
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agent_sre.gateway.plan import CallPlan, json_object, request_object, too_deep
from agent_sre.gateway.sse import StreamTap
from agent_sre.jsonbody import (
    MAX_DEPTH,
    PROXY_MAX_DEPTH,
    JsonBodyError,
    JsonTooDeepError,
    read_json,
)
from agent_sre.replay.canonical import canonical_body
from agent_sre.replay.cassette import CassetteError, loads
from agent_sre.replay.diff import diff_traces
from agent_sre.replay.traces import flatten, span_tree

ROOT = Path(__file__).parents[2]

# -- the reader -----------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1_000, 100_000])
@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_a_deep_document_is_a_refusal_not_a_recursion_error(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    text = opener * depth + ("1" if opener != "[" else "") + closer * depth
    with pytest.raises(JsonTooDeepError, match="nested deeper than"):
        read_json(text.encode())


def test_documents_up_to_the_limit_are_read() -> None:
    text = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert read_json(text) is not None
    text = "[" * PROXY_MAX_DEPTH + "]" * PROXY_MAX_DEPTH
    assert read_json(text, max_depth=PROXY_MAX_DEPTH) is not None


def test_a_document_too_long_is_refused() -> None:
    with pytest.raises(JsonBodyError, match="longer than"):
        read_json(b"[" + b"1," * 1000 + b"1]", max_bytes=100)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3),
    max_leaves=30,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()),
       st.integers(min_value=0, max_value=300))  # fmt: skip
def test_the_reader_returns_or_refuses_and_nothing_else(data: bytes, wrap: int) -> None:
    """Whatever the bytes, wrapped however deep: a value or a JsonBodyError."""
    body = b"[" * wrap + data + b"]" * wrap
    for numbers in (False, True):
        with contextlib.suppress(JsonBodyError):
            read_json(body, numbers=numbers)


@pytest.mark.parametrize(
    "reader",
    [json_object, request_object, canonical_body, too_deep,
     lambda body: StreamTap(CallPlan("openai", "openai", "chat")).feed(
         b"data: " + body + b"\n\n")],
    ids=["json_object", "request_object", "canonical_body", "too_deep", "sse"],
)  # fmt: skip
def test_proxy_readers_take_a_100000_deep_body(reader: Any) -> None:
    """Instance: a body nested 100,000 deep answered 500 on the proxy."""
    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000):
        reader(body)


def test_too_deep_names_the_refusal() -> None:
    assert "nested deeper than" in too_deep(b"[" * 300 + b"]" * 300)
    assert too_deep(b'{"model": "gpt-4o", "messages": []}') == ""
    wide = json.dumps({"messages": [{"role": "user", "content": str(i)} for i in range(500)]})
    assert too_deep(wide.encode()) == ""


# -- one reader: nothing reads JSON from outside another way ----------------------------

OWN_STATE = {
    # files the daemon wrote itself, read back (state, stores), and its own answers
    "src/agent_sre/jsonbody.py",
    "src/agent_sre/replay/traces.py",
    "daemon/agent_sre_daemon/chaos/store.py",
    "daemon/agent_sre_daemon/certification/store.py",
    "daemon/agent_sre_daemon/incidents/store.py",
    "daemon/agent_sre_daemon/incidents/notify.py",
    "daemon/agent_sre_daemon/replay/store.py",
    "daemon/agent_sre_daemon/delivery/store.py",
    "daemon/agent_sre_daemon/slo/runtime.py",
    "daemon/agent_sre_daemon/cli/client.py",
    "daemon/agent_sre_daemon/signals.py",  # its own json.dumps of a signal's details, redacted
}


def test_every_json_body_goes_through_the_one_reader() -> None:
    """No ``json.loads``/``json.load``/``request.json()`` outside the reader and the files
    that read the daemon's own state back: a new route or parser cannot skip the gate."""
    offenders = []
    for base in ("src/agent_sre", "daemon/agent_sre_daemon"):
        for path in (ROOT / base).rglob("*.py"):
            relative = str(path.relative_to(ROOT))
            if relative in OWN_STATE:
                continue
            for node in ast.walk(ast.parse(path.read_text(), relative)):
                if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                    continue
                func = node.func
                if (isinstance(func.value, ast.Name) and func.value.id == "json"
                        and func.attr in ("loads", "load")) or func.attr == "json":  # fmt: skip
                    offenders.append(f"{relative}:{node.lineno}")
    assert offenders == []


# -- span trees without recursion -------------------------------------------------------


def chain(length: int, rename: int | None = None) -> ExportTraceServiceRequest:
    """One trace: a parent chain ``length`` spans deep (span i's parent is span i-1)."""
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for i in range(length):
        span = spans.add()
        span.trace_id = b"\1" * 16
        span.span_id = (i + 1).to_bytes(8, "big")
        if i:
            span.parent_span_id = i.to_bytes(8, "big")
        span.name = "renamed" if i == rename else f"step-{i % 3}"
        span.start_time_unix_nano = 1_000 + i
        span.end_time_unix_nano = 10_000_000 - i
    return request


def test_a_1500_span_chain_is_shown_and_diffed() -> None:
    assert sys.getrecursionlimit() < 1500 * 2
    rows = flatten(span_tree(chain(1500)))
    assert len(rows) == 1500
    assert rows[-1]["depth"] == 1499
    assert diff_traces(span_tree(chain(1500)), span_tree(chain(1500))) == []
    changes = diff_traces(span_tree(chain(1500)), span_tree(chain(1500, rename=1400)))
    assert [(c.what, c.a, c.b) for c in changes] == [("name", "step-2", "renamed")]
    assert changes[0].path.count("/") == 1400


def test_the_diff_keeps_its_order_and_paths() -> None:
    """Parents before children, siblings in order, same-named siblings indexed."""
    a = span_tree(chain(4))
    b = span_tree(chain(4, rename=2))
    assert [str(c) for c in diff_traces(a, b)] == [
        "span:step-0/span:step-1/span:step-2: name 'step-2' -> 'renamed'",
    ]
    twins = ExportTraceServiceRequest()
    spans = twins.resource_spans.add().scope_spans.add().spans
    for i, name in enumerate(["t", "t", "u", "t"]):
        spans.add(trace_id=b"\1" * 16, span_id=(i + 1).to_bytes(8, "big"), name=name,
                         start_time_unix_nano=i)  # fmt: skip
    other = ExportTraceServiceRequest()
    other.CopyFrom(twins)
    del other.resource_spans[0].scope_spans[0].spans[1]
    assert [str(c) for c in diff_traces(span_tree(twins), span_tree(other))] == [
        "span:t[1]: span removed"
    ]


# -- cassettes validated on load --------------------------------------------------------


def cassette(**overrides: Any) -> dict[str, Any]:
    exchange = {"route": "openai", "prefix": "/openai", "api": "openai", "method": "POST",
                "path": "/v1/chat/completions", "request": '{"model": "gpt-4o"}', "status": 200,
                "chunks": [{"at": 0.0, "data": '{"id": "x"}'}]}  # fmt: skip
    data = {"format": "agent-sre-cassette", "version": 1, "trace_id": "ab" * 16,
            "exchanges": [exchange], "trace": {}, "redaction": []}  # fmt: skip
    for key, value in overrides.items():
        if key in exchange:
            exchange[key] = value
        else:
            data[key] = value
    return data


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        ({"redaction": ["(unclosed"]}, "redaction[0]"),
        ({"redaction": ["ok", "[z-a]"]}, "redaction[1]"),
        ({"request": "[" * 5000 + "]" * 5000}, "exchanges[0].request"),
        ({"chunks": [{"at": 0.0, "data": '{"a":' * 5000 + "1" + "}" * 5000}]},
         "exchanges[0].answer"),
        ({"chunks": [{"at": 1e300, "data": "x"}]}, "exchanges[0]"),
        ({"status": 10**30}, "exchanges[0]"),
        ({"status": 42}, "exchanges[0].status"),
    ],
)  # fmt: skip
def test_a_crafted_cassette_is_refused_naming_where(overrides: dict[str, Any], where: str) -> None:
    """Instance: a bad regex or a deep body crashed ``replay serve`` with a traceback."""
    with pytest.raises(CassetteError) as refused:
        loads(json.dumps(cassette(**overrides)), "bad.json")
    assert str(refused.value).startswith(f"bad.json: {where}"), str(refused.value)


def test_a_cassette_nested_100000_deep_is_refused() -> None:
    with pytest.raises(CassetteError, match="bad.json: nested deeper"):
        loads(b"[" * 100_000 + b"]" * 100_000, "bad.json")


def test_a_good_cassette_still_loads() -> None:
    assert len(loads(json.dumps(cassette()), "good.json").exchanges) == 1
