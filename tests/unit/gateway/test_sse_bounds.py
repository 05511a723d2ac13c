"""The stream tap holds at most one bounded partial event: a stream without blank lines
passes through whole, unread, without the tap's buffer growing with it."""

from __future__ import annotations

import pytest

from agent_sre.gateway.plan import CallPlan
from agent_sre.gateway.sse import StreamTap

USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2}}\n\n'


def plan(rewrite: bool) -> CallPlan:
    return CallPlan("openai", "openai", "chat", model="gpt-4o-mini", strip_usage=rewrite)


@pytest.mark.parametrize("rewrite", [False, True])
def test_no_blank_lines_pass_through_with_a_bounded_buffer(rewrite: bool) -> None:
    tap = StreamTap(plan(rewrite), max_event_bytes=4096)
    stream = b"data: " + b"x" * 100_000 + b"\n" + b"data: y\n" * 5000
    out = b""
    largest = 0
    for start in range(0, len(stream), 1000):
        out += tap.feed(stream[start : start + 1000])
        largest = max(largest, len(tap._buffer))
    out += tap.finish()
    assert (out if rewrite else stream) == stream
    assert largest <= 4096 + 1000
    assert tap.oversized == 1


@pytest.mark.parametrize("rewrite", [False, True])
def test_usage_after_an_oversized_event_is_still_read(rewrite: bool) -> None:
    tap = StreamTap(plan(rewrite), max_event_bytes=1024)
    big = b"data: " + b"z" * 5000 + b"\r\n\r\n"
    stream = big + USAGE + b"data: [DONE]\n\n"
    out = b"".join(tap.feed(stream[i : i + 7]) for i in range(0, len(stream), 7)) + tap.finish()
    assert tap.facts.usage is not None
    assert tap.facts.usage.input_tokens == 4
    # rewriting takes out the usage chunk (the proxy asked for it), and only that
    assert out == (big + b"data: [DONE]\n\n" if rewrite else stream)


@pytest.mark.parametrize("split", [1, 2, 3, 5])
def test_an_event_end_split_across_chunks_is_found(split: int) -> None:
    tap = StreamTap(plan(False))
    stream = USAGE.replace(b"\n\n", b"\r\n\r\n")
    for start in range(0, len(stream), split):
        tap.feed(stream[start : start + split])
    assert tap.events == 1
    assert tap.facts.usage is not None
