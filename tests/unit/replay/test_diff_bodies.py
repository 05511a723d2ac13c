"""The diff of two runs compares the captured calls of matched spans: the request's prompt,
the answer's text and the tool calls asked for, whole (JSON) or streamed (SSE), OpenAI and
Anthropic; other shapes as canonical bodies. Ids minted per call never count."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from agent_sre.replay.bodies import compare_calls, excerpts
from agent_sre.replay.diff import Change, diff_traces
from agent_sre.replay.exchange import Exchange
from agent_sre.replay.traces import span_tree
from tests.unit.replay.test_store_and_traces import run

if TYPE_CHECKING:
    from collections.abc import Sequence

LLM_SPAN = (2).to_bytes(8, "big").hex()
"""The span id of the LLM_INFERENCE span of ``run()``: the proxy's span of the call."""
PATH = "AGENT_TASK:agent/LLM_INFERENCE:chat gpt-4o"


def chat_request(prompt: str, history: list[dict[str, Any]] | None = None) -> bytes:
    messages = [{"role": "user", "content": prompt}, *(history or [])]
    return json.dumps({"model": "gpt-4o", "messages": messages}).encode()


def openai_json(text: str, calls: Sequence[tuple[str, str]] = (), reply_id: str = "1") -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = [
            {"id": f"call_{reply_id}{n}", "type": "function",
             "function": {"name": name, "arguments": arguments}}
            for n, (name, arguments) in enumerate(calls)
        ]  # fmt: skip
    return json.dumps(
        {"id": f"chatcmpl-{reply_id}", "object": "chat.completion", "created": int(reply_id),
         "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
    ).encode()  # fmt: skip


def sse(*events: dict[str, Any], done: bool = True, named: bool = False) -> list[bytes]:
    """Events as chunks, each event cut in two (a stream is cut anywhere)."""
    chunks = []
    for event in events:
        head = f"event: {event['type']}\n" if named else ""
        raw = f"{head}data: {json.dumps(event)}\n\n".encode()
        chunks += [raw[: len(raw) // 2], raw[len(raw) // 2 :]]
    if done:
        chunks.append(b"data: [DONE]\n\n")
    return chunks


def openai_stream(
    text: str, calls: Sequence[tuple[str, str]] = (), reply_id: str = "9"
) -> list[bytes]:
    base = {"id": f"chatcmpl-{reply_id}", "object": "chat.completion.chunk"}
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    for word in text.split(" "):
        events.append({**base, "choices": [{"index": 0, "delta": {"content": word + " "}}]})
    for n, (name, arguments) in enumerate(calls):
        first = {"index": n, "id": f"call_{reply_id}", "function": {"name": name, "arguments": ""}}
        events.append({**base, "choices": [{"index": 0, "delta": {"tool_calls": [first]}}]})
        for piece in (arguments[:5], arguments[5:]):
            delta = {"tool_calls": [{"index": n, "function": {"arguments": piece}}]}
            events.append({**base, "choices": [{"index": 0, "delta": delta}]})
    events.append({**base, "choices": [], "usage": {"prompt_tokens": 3}})
    return sse(*events)


def anthropic_json(text: str, tool_input: dict[str, Any] | None = None) -> bytes:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}]
    if tool_input is not None:
        content.append({"type": "tool_use", "id": "toolu_1", "name": "search", "input": tool_input})
    return json.dumps({"id": "msg_1", "type": "message", "role": "assistant",
                       "content": content}).encode()  # fmt: skip


def anthropic_stream(text: str, tool_input: dict[str, Any] | None = None) -> list[bytes]:
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"id": "msg_2", "content": []}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
    ]
    for word in text.split(" "):
        delta = {"type": "text_delta", "text": word if not events[3:] else " " + word}
        events.append({"type": "content_block_delta", "index": 0, "delta": delta})
    events.append({"type": "content_block_stop", "index": 0})
    if tool_input is not None:
        block = {"type": "tool_use", "id": "toolu_2", "name": "search", "input": {}}
        events.append({"type": "content_block_start", "index": 1, "content_block": block})
        raw = json.dumps(tool_input)
        for piece in (raw[:4], raw[4:]):
            delta = {"type": "input_json_delta", "partial_json": piece}
            events.append({"type": "content_block_delta", "index": 1, "delta": delta})
    events.append({"type": "message_stop"})
    return sse(*events, done=False, named=True)


def call(
    request: bytes, answer: bytes | list[bytes], api: str = "openai", **extra: Any
) -> Exchange:
    streamed = isinstance(answer, list)
    chunks = [(n * 0.01, c) for n, c in enumerate(answer)] if streamed else [(0.0, answer)]
    return Exchange(
        route=api, prefix=f"/{api}", api=api, method="POST", path="/v1/chat/completions",
        request=request, status=200,
        content_type="text/event-stream" if streamed else "application/json",
        chunks=chunks, streamed=streamed, trace_id="ab" * 16, span_id=LLM_SPAN, **extra,
    )  # fmt: skip


def diff(a: Exchange | None, b: Exchange | None) -> list[Change]:
    return diff_traces(
        span_tree(run(10)),
        span_tree(run(10)),
        calls_a=[a] if a else [],
        calls_b=[b] if b else [],
    )


def test_a_changed_prompt_is_named_with_where_it_differs() -> None:
    a = call(chat_request("Plan a trip to Lisbon."), openai_json("ok"))
    b = call(chat_request("Plan a trip to Porto."), openai_json("ok", reply_id="2"))
    (change,) = diff(a, b)
    assert change == Change(
        PATH, "request", "Plan a trip to Lisbon.", "Plan a trip to Porto.", "messages[0].content"
    )
    assert str(change) == (
        f"{PATH}: request (messages[0].content) 'Plan a trip to Lisbon.' -> 'Plan a trip to Porto.'"
    )
    assert change.to_json()["where"] == "messages[0].content"


def test_a_changed_answer_text_is_named() -> None:
    a = call(chat_request("hi"), openai_json("The answer is 42"))
    b = call(chat_request("hi"), openai_json("The answer is 43", reply_id="7"))
    assert diff(a, b) == [Change(PATH, "answer", "The answer is 42", "The answer is 43")]


def test_changed_tool_arguments_are_named_by_their_path() -> None:
    a = call(chat_request("go"), openai_json("", [("search", '{"query": "lisbon", "n": 3}')]))
    b = call(chat_request("go"), openai_json("", [("search", '{"n": 3, "query": "porto"}')], "8"))
    (change,) = diff(a, b)
    assert (change.what, change.where, change.a, change.b) == (
        "tool calls", "tool_calls[0].arguments.query", "lisbon", "porto"
    )  # fmt: skip
    other_tool = call(chat_request("go"), openai_json("", [("browse", '{"query": "lisbon"}')]))
    (renamed,) = diff(a, other_tool)
    assert (renamed.where, renamed.a, renamed.b) == ("tool_calls[0].name", "search", "browse")


def test_streamed_answers_compare_with_streamed_and_whole_ones() -> None:
    a = call(chat_request("hi"), openai_stream("The answer is forty two"))
    b = call(chat_request("hi"), openai_stream("The answer is forty three", reply_id="5"))
    assert [(c.what, c.a, c.b) for c in diff(a, b)] == [
        ("answer", "The answer is forty two ", "The answer is forty three ")
    ]
    # the same answer streamed and whole, with its tool call, is no change
    calls = [("search", '{"query": "lisbon"}')]
    streamed = call(chat_request("hi"), openai_stream("same text", calls))
    whole = call(chat_request("hi"), openai_json("same text ", calls))
    assert diff(streamed, whole) == []
    rome = [("search", '{"query": "rome"}')]
    changed = call(chat_request("hi"), openai_stream("same text", rome))
    assert [(c.what, c.a, c.b) for c in diff(streamed, changed)] == [
        ("tool calls", "lisbon", "rome")
    ]


def test_anthropic_messages_whole_and_streamed() -> None:
    request = json.dumps({"model": "claude", "system": "be brief",
                          "messages": [{"role": "user", "content": "hi"}]}).encode()  # fmt: skip
    whole = call(request, anthropic_json("Hello there", {"q": "lisbon"}), "anthropic")
    streamed = call(request, anthropic_stream("Hello there", {"q": "lisbon"}), "anthropic")
    assert diff(whole, streamed) == []
    other = call(request, anthropic_stream("Hello you", {"q": "porto"}), "anthropic")
    assert [(c.what, c.where, c.a, c.b) for c in diff(streamed, other)] == [
        ("answer", "", "Hello there", "Hello you"),
        ("tool calls", "tool_calls[0].arguments.q", "lisbon", "porto"),
    ]
    terse = json.dumps({"model": "claude", "system": "be terse",
                        "messages": [{"role": "user", "content": "hi"}]}).encode()  # fmt: skip
    (change,) = diff(whole, call(terse, anthropic_json("Hello there", {"q": "lisbon"})))
    assert (change.what, change.where) == ("request", "system")


def test_identical_calls_are_no_change_even_with_ids_minted_per_call() -> None:
    def history(n: str) -> list[dict[str, Any]]:
        return [
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{n}", "type": "function",
                 "function": {"name": "search", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": f"call_{n}", "content": "found"},
        ]  # fmt: skip

    a = call(chat_request("hi", history("abc")), openai_json("ok", [("s", "{}")], "1"))
    b = call(chat_request("hi", history("xyz")), openai_json("ok", [("s", "{}")], "2"))
    assert diff(a, b) == []
    assert diff(a, a) == []


def test_one_side_with_no_capture_reports_no_body_change() -> None:
    a = call(chat_request("Plan a trip to Lisbon."), openai_json("one"))
    b = call(chat_request("Plan a trip to Porto."), openai_json("two"))
    assert diff(a, None) == [] and diff(None, b) == []
    # bodies cut at the size limit (or left out over the trace's share) are not compared
    cut = call(chat_request("Plan a trip to Porto."), openai_json("two"), truncated=True)
    assert diff(a, cut) == []
    # a call of another span is not this span's call
    elsewhere = call(b"{}", b"{}")
    elsewhere.span_id = "00" * 8
    assert diff(a, elsewhere) == []


def test_other_shapes_compare_as_canonical_bodies() -> None:
    a = call(b'{"tool": "search", "args": {"q": "x"}}', b'{"result": [1, 2]}', "tool")
    same = call(b'{"args": {"q": "x"},  "tool": "search"}', b'{ "result": [1,2] }', "tool")
    assert diff(a, same) == []
    b = call(b'{"tool": "search", "args": {"q": "y"}}', b"plain text answer", "tool")
    assert [(c.what, c.where, c.a, c.b) for c in diff(a, b)] == [
        ("request", "args.q", "x", "y"),
        ("answer", "", '{"result":[1,2]}', "plain text answer"),
    ]
    # an error body on one side is compared with the other side's text
    error = call(chat_request("hi"), b'{"error": {"message": "fake 500"}}')
    ok = call(chat_request("hi"), openai_json("fine"))
    (change,) = diff(ok, error)
    assert (change.what, change.a) == ("answer", "fine")
    assert change.b == '{"error":{"message":"fake 500"}}'


def test_long_values_are_cut_around_the_first_difference() -> None:
    text = "word " * 100
    a = call(chat_request(text + "Lisbon"), openai_json("ok"))
    b = call(chat_request(text + "Porto"), openai_json("ok"))
    (change,) = diff(a, b)
    assert change.where == f"messages[0].content, char {len(text)}"
    assert change.a.startswith("...") and change.a.endswith("Lisbon")
    assert change.b.startswith("...") and change.b.endswith("Porto")
    assert len(change.a) <= 70 and len(change.b) <= 70
    short_a, short_b, at = excerpts("x" * 10 + "A" + "y" * 200, "x" * 10 + "B" + "y" * 200)
    assert at == 10 and short_a.startswith("xxxxxxxxxxA") and short_a.endswith("...")
    assert short_b[10] == "B"


def test_compare_calls_reads_openai_responses_and_completions() -> None:
    responses = json.dumps({"object": "response", "output": [
        {"type": "message", "id": "msg_1", "content": [{"type": "output_text", "text": "Hi"}]},
        {"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "search",
         "arguments": '{"q": "a"}'},
    ]}).encode()  # fmt: skip
    request = json.dumps({"model": "m", "input": "hi"}).encode()
    completed = sse({"type": "response.output_text.delta", "delta": "Hi"},
                    {"type": "response.completed", "response": json.loads(responses)},
                    done=False, named=True)  # fmt: skip
    assert compare_calls(call(request, responses), call(request, completed)) == []
    legacy = call(b'{"prompt": "say"}', b'{"choices": [{"index": 0, "text": "said"}]}')
    other = call(b'{"prompt": "say"}', sse({"choices": [{"index": 0, "text": "sad"}]}))
    assert [(c.what, c.a, c.b) for c in compare_calls(legacy, other)] == [("answer", "said", "sad")]
