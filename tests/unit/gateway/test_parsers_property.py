"""Bug 7, as properties: the providers' readers never raise on arbitrary JSON, whatever its
shape, and the stream tap hands the client exactly the upstream's bytes."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_sre.config import ProxyRoute
from agent_sre.gateway.providers import facts_from_json, plan_call
from agent_sre.gateway.sse import StreamTap

if TYPE_CHECKING:
    from agent_sre.gateway.plan import CallPlan

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
KEYS = st.sampled_from(
    [
        "model", "usage", "choices", "message", "delta", "content", "text", "type", "index",
        "prompt_tokens", "completion_tokens", "input_tokens", "output_tokens", "tool_calls",
        "prompt_tokens_details", "cached_tokens", "cache_read_input_tokens", "response",
        "output", "error", "result", "isError", "stream", "max_tokens", "n", "stream_options",
        "include_usage", "message_start", "content_block_delta", "message_delta",
    ]
)  # fmt: skip
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(), inner, max_size=5)
    ),
    max_leaves=30,
)
OBJECTS = st.dictionaries(KEYS, JSON, max_size=6)
EVENT_TYPES = st.sampled_from(
    ["message_start", "content_block_delta", "message_delta", "response.completed", "x"]
)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


def route(api: str) -> ProxyRoute:
    return ProxyRoute(name=api, prefix=f"/{api}", upstream="http://127.0.0.1:1", api=api)


def plans() -> list[CallPlan]:
    chat = b'{"model":"gpt-4o-mini","messages":[],"stream":true}'
    return [
        plan_call(route("openai"), "POST", "/v1/chat/completions", chat),
        plan_call(route("openai"), "POST", "/v1/responses", chat),
        plan_call(route("anthropic"), "POST", "/v1/messages", chat),
        plan_call(route("mcp"), "POST", "/mcp", b'{"method":"tools/call","id":1}'),
        plan_call(route("tool"), "POST", "/x", b""),
    ]


def check_usage(facts) -> None:
    if facts.usage is not None:
        for value in (facts.usage.input_tokens, facts.usage.output_tokens):
            assert isinstance(value, int)
            assert value >= 0


@SETTINGS
@given(OBJECTS)
def test_facts_from_json_never_raises(data: dict) -> None:
    body = json.dumps(data).encode()
    for plan in plans():
        check_usage(facts_from_json(plan, body))


@SETTINGS
@given(st.lists(st.tuples(EVENT_TYPES, OBJECTS), max_size=6), st.integers(7, 200))
def test_stream_tap_never_raises_and_passes_bytes_through(events, cut: int) -> None:
    stream = b"\n\n".join(
        b"data: " + json.dumps({"type": name, **data}).encode() for name, data in events
    )
    for plan in plans():
        plan.strip_usage = False
        tap = StreamTap(plan)
        out = b""
        for start in range(0, len(stream), cut):
            out += tap.feed(stream[start : start + cut])
        out += tap.finish()
        assert out == stream
        check_usage(tap.facts)


@SETTINGS
@given(JSON)
def test_plan_call_never_raises(data) -> None:
    body = json.dumps(data).encode()
    for api, path in (("openai", "/v1/chat/completions"), ("anthropic", "/v1/messages")):
        plan = plan_call(route(api), "POST", path, body)
        assert plan.llm_call
        assert plan.worst_case_tokens >= 0


def test_deeply_nested_json_is_unknown_usage_not_an_error() -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    obj = b'{"usage":' * 50_000 + b"1" + b"}" * 50_000
    for plan in plans():
        for body in (deep, obj):
            assert facts_from_json(plan, body).usage is None
            tap = StreamTap(plan)
            assert tap.feed(b"data: " + body + b"\n\n") == b"data: " + body + b"\n\n"
    plan = plan_call(route("openai"), "POST", "/v1/chat/completions", obj)
    assert plan.llm_call
