"""The redaction rules: credentials by shape and by name, the pre-scan as a superset of what
is replaced, streams reassembled event by event, every field of an OTLP request."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from agent_sre.replay.redaction import Redactor, credential_name
from agent_sre.replay.streams import redact_chunks
from agent_sre.replay.traces import redact_spans

KEY = "sk-proj-Zq81xWmB4tKd9LrP2vYc"
OPAQUE = "Opq7f3a9c1e5b"
REDACTOR = Redactor()


def test_names_of_credentials() -> None:
    for name in ("api_key", "key", "Token", "x-goog-api-key", "X-Api-Key", "client_secret",
                 "user.password", "http.request.header.authorization", "access_token",
                 "cloud.api_key", "Ocp-Apim-Subscription-Key", "sig", "X-Amz-Signature",
                 "http.request.header.cookie"):  # fmt: skip
        assert credential_name(name), name
    for name in ("max_tokens", "gen_ai.usage.input_tokens", "cache_key", "url.full", "model",
                 "monkey", "keyboard", "tokens", "signature"):  # fmt: skip
        assert not credential_name(name), name


def test_values_under_a_credential_name_are_redacted_in_text() -> None:
    cases = {
        f"/v1/models?key={OPAQUE}&q=fine": "/v1/models?key=[REDACTED]&q=fine",
        f"api_key={OPAQUE}": "api_key=[REDACTED]",
        f'{{"client_secret": "{OPAQUE}", "max_tokens": 5}}':
            '{"client_secret": "[REDACTED]", "max_tokens": 5}',
        f'{{"token":"{OPAQUE}\\"x","cache_key":"c"}}': '{"token":"[REDACTED]","cache_key":"c"}',
        f"X-Api-Key: {OPAQUE}\r\nAuthorization: Basic {OPAQUE}==":
            "X-Api-Key: [REDACTED]\r\nAuthorization: Basic [REDACTED]",
        "max_tokens=5&cache_key=abc": "max_tokens=5&cache_key=abc",
    }  # fmt: skip
    for text, expected in cases.items():
        assert REDACTOR.redact_text(text) == expected, text
        assert REDACTOR.finds(text.encode()) == (text != expected), text


_PARTS = st.sampled_from(
    [KEY, OPAQUE, "api_key", "key", "token", "password", "=", ":", ": ", '"', '":"', "&", "?",
     " ", "\n", "Bearer ", "AKIAABCDEFGHIJKLMNOP", "4111 1111 1111 1111", "jane@example.com",
     "x", "max_tokens", "\x12", "\x07", "{", "}", "sk-", "AIza", "-", "_"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(_PARTS, max_size=14))
def test_the_pre_scan_flags_whatever_redaction_would_change(parts: list[str]) -> None:
    data = "".join(parts).encode()
    if REDACTOR.redact(data) != data:
        assert REDACTOR.finds(data), data


def sse(pieces: list[str]) -> bytes:
    events = [
        b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": p}}]}).encode()
        + b"\n\n"
        for p in pieces
    ]  # fmt: skip
    return b"".join(events) + b"data: [DONE]\n\n"


def content(stream: bytes) -> str:
    text = []
    for line in stream.split(b"\n"):
        if line.startswith(b"data: {"):
            event = json.loads(line[6:])
            text.append(event["choices"][0]["delta"]["content"])
    return "".join(text)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_key_streamed_a_few_characters_an_event_is_redacted(data: st.DataObject) -> None:
    answer = f"Your key is {KEY} keep it safe"
    cuts = sorted(data.draw(st.sets(st.integers(1, len(answer) - 1), max_size=20)))
    pieces = [answer[a:b] for a, b in zip([0, *cuts], [*cuts, len(answer)], strict=True)]
    stream = sse(pieces)
    splits = sorted(data.draw(st.sets(st.integers(1, len(stream) - 1), max_size=12)))
    chunks = [
        (i * 0.1, stream[a:b])
        for i, (a, b) in enumerate(zip([0, *splits], [*splits, len(stream)], strict=True))
    ]
    out = redact_chunks(chunks, REDACTOR, "text/event-stream; charset=utf-8")
    joined = b"".join(chunk for _, chunk in out)
    assert content(joined) == "Your key is [REDACTED] keep it safe"
    assert joined.endswith(b"data: [DONE]\n\n")
    times = [at for at, _ in out]
    assert times == sorted(times) and set(times) <= {at for at, _ in chunks}


def test_a_stream_with_nothing_to_hide_is_kept_as_it_came() -> None:
    chunks = [(0.0, sse(["Hello", " world"])[:30]), (0.2, sse(["Hello", " world"])[30:])]
    assert redact_chunks(chunks, REDACTOR, "text/event-stream") == chunks


def test_named_fields_and_streamed_tool_arguments_in_a_stream() -> None:
    arguments = ['{"api', '_key": "', OPAQUE[:5], OPAQUE[5:], '", "q": "x"}']
    events = [
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": a}}]}}]}
        for a in arguments
    ]
    events.append({"type": "x", "password": OPAQUE})
    stream = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    out = b"".join(c for _, c in redact_chunks([(0.0, stream)], REDACTOR, "text/event-stream"))
    assert OPAQUE[:5].encode() not in out and OPAQUE[5:].encode() not in out


def test_ndjson_lines_are_reassembled_too() -> None:
    lines = [json.dumps({"text": p}).encode() + b"\n" for p in ("key is sk-pr", KEY[5:], " ok")]
    out = redact_chunks([(0.0, b"".join(lines))], REDACTOR, "application/x-ndjson")
    text = "".join(json.loads(line)["text"] for line in b"".join(c for _, c in out).splitlines())
    assert text == "key is [REDACTED] ok"


def test_every_field_of_a_request_a_client_chose() -> None:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="cloud.api_key", value=AnyValue(string_value="o1"))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = f"scope {KEY}"
    span = scope_spans.spans.add(name=f"invoke_agent {KEY}")
    span.status.message = f"failed {KEY}"
    span.attributes.add(key=KEY, value=AnyValue(string_value="a key as a name"))
    span.attributes.add(key="raw", value=AnyValue(bytes_value=b"Authorization: Bearer o2"))
    span.attributes.add(key="password", value=AnyValue(int_value=1234))
    nested = AnyValue()
    nested.kvlist_value.values.extend(
        [KeyValue(key="client_secret", value=AnyValue(string_value="o3")),
         KeyValue(key="text", value=AnyValue(string_value=KEY))]
    )  # fmt: skip
    span.attributes.add(key="config", value=nested)
    array = AnyValue()
    array.array_value.values.add(bytes_value=KEY.encode())
    span.attributes.add(key="blobs", value=array)
    span.attributes.add(key="url.full", value=AnyValue(string_value="https://x/y?key=o4&q=1"))
    event = span.events.add(name=f"retry {KEY}")
    event.attributes.add(key="token", value=AnyValue(string_value="o5"))
    span.links.add().attributes.add(key="note", value=AnyValue(string_value=KEY))
    body = request.SerializeToString()
    assert REDACTOR.finds(body)
    redact_spans(request, REDACTOR)
    stored = request.SerializeToString()
    for secret in (KEY, "o1", "Bearer o2", "o3", "o4", "o5"):
        assert secret.encode() not in stored, secret
    assert span.attributes[2].value.string_value == "[REDACTED]"  # the number, by its name
    assert b"q=1" in stored and b"a key as a name" in stored


def test_attribute_names_like_a_credential_are_found_in_protobuf_bytes() -> None:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(name="fine")
    span.attributes.add(key="user.password", value=AnyValue(string_value="hunter2"))
    assert REDACTOR.finds(request.SerializeToString())
    span.attributes[0].key = "gen_ai.usage.input_tokens"
    assert not REDACTOR.finds(request.SerializeToString())


def test_a_float_s_digits_are_no_card_number() -> None:
    """16 digits of a float's fraction can pass the Luhn check: replacing them would break
    the JSON they are in (a rollout's p-value did)."""
    for text in (
        '{"p_value": 1.7961999089417322e-11}',
        "x=-0.4111111111111111",
        "4111111111111111.5",
    ):
        assert REDACTOR.redact_text(text) == text and not REDACTOR.finds(text.encode())
    assert REDACTOR.redact_text("card 4111 1111 1111 1111.") == "card [REDACTED]."
