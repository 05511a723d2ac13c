"""The stream tap: any split of the bytes gives the same output and the same usage."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from agent_sre.config import ProxyRoute
from agent_sre.gateway.providers import plan_call
from agent_sre.gateway.sse import StreamTap

OPENAI = ProxyRoute(name="o", prefix="/o", upstream="http://x", api="openai")
ANTHROPIC = ProxyRoute(name="a", prefix="/a", upstream="http://x", api="anthropic")


def chunk(extra: dict, usage: bool = True) -> bytes:
    data = {"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o-mini", **extra}
    if usage and "usage" not in data:
        data["usage"] = None
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


WITH_USAGE = (
    chunk({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    + chunk({"choices": [{"index": 0, "delta": {"content": "Hello"}}]})
    + chunk({"choices": [{"index": 0, "delta": {"content": " you"}}]})
    + chunk(
        {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}}
    )
    + b"data: [DONE]\n\n"
)
WITHOUT_USAGE = (
    chunk({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}, False)
    + chunk({"choices": [{"index": 0, "delta": {"content": "Hello"}}]}, False)
    + chunk({"choices": [{"index": 0, "delta": {"content": " you"}}]}, False)
    + b"data: [DONE]\n\n"
)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


def run(tap: StreamTap, pieces: list[bytes]) -> bytes:
    return b"".join(tap.feed(piece) for piece in pieces) + tap.finish()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 10_000), max_size=12))
def test_strip_mode_any_split(cuts: list[int]) -> None:
    body = json.dumps({"model": "gpt-4o-mini", "stream": True, "messages": []}).encode()
    plan = plan_call(OPENAI, "POST", "/v1/chat/completions", body)
    assert plan.strip_usage
    tap = StreamTap(plan)
    assert run(tap, split(WITH_USAGE, cuts)) == WITHOUT_USAGE
    assert tap.facts.usage is not None and tap.facts.usage.input_tokens == 9
    assert tap.facts.usage_final
    assert tap.facts.output_chars == 9


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 10_000), max_size=12))
def test_pass_mode_forwards_every_chunk_unchanged(cuts: list[int]) -> None:
    body = json.dumps(
        {"model": "m", "stream": True, "stream_options": {"include_usage": True}}
    ).encode()
    plan = plan_call(OPENAI, "POST", "/v1/chat/completions", body)
    assert not plan.strip_usage and plan.body == body
    tap = StreamTap(plan)
    pieces = split(WITH_USAGE, cuts)
    assert [tap.feed(piece) for piece in pieces] == pieces
    assert tap.facts.usage is not None and tap.facts.usage.output_tokens == 2


def test_anthropic_usage_from_start_and_delta_with_cache() -> None:
    events = [
        {
            "type": "message_start",
            "message": {
                "model": "claude-x",
                "usage": {
                    "input_tokens": 10,
                    "cache_read_input_tokens": 100,
                    "cache_creation_input_tokens": 5,
                    "output_tokens": 1,
                },
            },
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "abcd"},
        },
    ]
    raw = b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + json.dumps(e).encode() + b"\n\n"
        for e in events
    )
    plan = plan_call(ANTHROPIC, "POST", "/v1/messages", b'{"model":"claude-x","stream":true}')
    tap = StreamTap(plan)
    assert tap.feed(raw) == raw
    usage = tap.facts.usage
    assert usage is not None and not tap.facts.usage_final  # cut before message_delta
    assert (usage.input_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (115, 100, 5)
    delta = {"type": "message_delta", "usage": {"output_tokens": 42}}
    tap.feed(b"event: message_delta\ndata: " + json.dumps(delta).encode() + b"\r\n\r\n")
    assert tap.facts.usage_final
    assert tap.facts.usage is not None and tap.facts.usage.output_tokens == 42
    assert tap.facts.usage.input_tokens == 115


def test_plan_reads_limits_and_ignores_garbage() -> None:
    plan = plan_call(
        OPENAI,
        "POST",
        "/v1/chat/completions",
        b'{"model":"m","max_completion_tokens":7,"max_tokens":9}',
    )
    assert plan.max_output_tokens == 7 and plan.priced
    assert not plan_call(OPENAI, "POST", "/v1/chat/completions", b"not json").priced
    assert plan_call(OPENAI, "GET", "/v1/models", b"").operation is None
    assert (
        plan_call(OPENAI, "POST", "/v1/embeddings", b'{"model":"e","input":"x"}').max_output_tokens
        == 0
    )
