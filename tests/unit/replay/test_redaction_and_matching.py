"""Redaction, canonical requests and the replay script's matching and mismatch messages."""

from __future__ import annotations

import json

import pytest

from agent_sre.config import ConfigError, parse_config
from agent_sre.replay.canonical import canonical_body, differences
from agent_sre.replay.exchange import Exchange
from agent_sre.replay.redaction import Redactor
from agent_sre.replay.script import Mismatch, ReplayScript


@pytest.mark.parametrize(
    "secret",
    [
        "sk-proj-abcdefghijklmnop0123",
        "sk-ant-api03-abcdefghijklmnopqrstuvwx",
        "AKIAABCDEFGHIJKLMNOP",
        "Bearer eyJhbGciOi.eyJzdWIi.sig-nature_",
        "someone.else+tag@mail.example.org",
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    ],
)
def test_default_patterns_remove_secrets(secret: str) -> None:
    body = json.dumps({"messages": [{"content": f"use {secret} now"}]}).encode()
    redacted = Redactor().redact(body)
    assert secret.encode() not in redacted
    assert b"[REDACTED]" in redacted
    assert json.loads(redacted)  # still JSON


def test_numbers_that_are_not_cards_stay() -> None:
    body = b'{"id": 1234567890123, "n": "4111 1111 1111 1112"}'
    assert Redactor().redact(body) == body


def test_configured_patterns_are_added() -> None:
    redactor = Redactor(["(?i)ticket-[0-9]{4}"])
    assert redactor.redact(b"see TICKET-1234 and a@b.io") == b"see [REDACTED] and [REDACTED]"


def test_a_bad_configured_pattern_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as bad:
        parse_config("replay:\n  redaction:\n    patterns: ['([a-z']\n", "r.yaml")
    assert "replay.redaction.patterns" in str(bad.value)
    assert "patterns[0]" in str(bad.value)


def test_canonical_json_ignores_key_order_and_spacing() -> None:
    assert canonical_body(b'{"b": 1, "a": [1, 2]}') == canonical_body(b'{"a":[1,2],"b":1}')
    assert canonical_body(b"not json") == "not json"


def test_differences_name_the_json_path() -> None:
    a = b'{"model": "m", "messages": [{"content": "hi"}]}'
    b = b'{"model": "m", "messages": [{"content": "ho"}], "n": 2}'
    assert differences(a, b) == ["messages[0].content: 'hi' -> 'ho'", "n: added 2"]
    assert differences(a, a) == []


def exchange(body: dict[str, object], answer: str, at: float) -> Exchange:
    return Exchange(
        route="openai",
        prefix="/openai",
        api="openai",
        method="POST",
        path="/v1/chat/completions",
        request=json.dumps(body).encode(),
        status=200,
        content_type="application/json",
        chunks=[(0.01, answer.encode())],
        span_id="00f067aa0ba902b7",
        at=at,
    )


def test_a_script_answers_in_recorded_order_and_then_runs_out() -> None:
    ask = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    script = ReplayScript([exchange(ask, "second", 2.0), exchange(ask, "first", 1.0)], Redactor())
    path = "/openai/v1/chat/completions"
    body = json.dumps(ask, indent=2).encode()
    first = script.answer("POST", path, body)
    second = script.answer("POST", path, body)
    assert isinstance(first, Exchange) and first.body == b"first"
    assert isinstance(second, Exchange) and second.body == b"second"
    third = script.answer("POST", path, body)
    assert isinstance(third, Mismatch)
    assert "no recorded call left" in third.message


def test_a_changed_request_names_the_nearest_and_the_difference() -> None:
    script = ReplayScript(
        [
            exchange({"model": "m", "messages": [{"content": "plan a trip"}]}, "a", 1.0),
            exchange({"model": "other", "temperature": 1, "messages": []}, "b", 2.0),
        ],
        Redactor(),
    )
    live = json.dumps({"model": "m", "messages": [{"content": "plan a cruise"}]}).encode()
    result = script.answer("POST", "/openai/v1/chat/completions", live)
    assert isinstance(result, Mismatch)
    assert result.nearest is not None and result.nearest.body == b"a"
    assert "messages[0].content: 'plan a trip' -> 'plan a cruise'" in result.message
    other_path = script.answer("POST", "/openai/v1/embeddings", live)
    assert isinstance(other_path, Mismatch)
    assert "recorded calls left: POST /openai/v1/chat/completions" in other_path.message


def test_live_secrets_are_redacted_before_matching() -> None:
    recorded = {"messages": [{"content": "mail [REDACTED]"}]}
    script = ReplayScript([exchange(recorded, "ok", 1.0)], Redactor())
    live = json.dumps({"messages": [{"content": "mail jo@example.com"}]}).encode()
    assert isinstance(script.answer("POST", "/openai/v1/chat/completions", live), Exchange)


def test_a_truncated_recording_is_never_replayed() -> None:
    cut = exchange({"a": 1}, "x", 1.0)
    cut.truncated = True
    result = ReplayScript([cut], Redactor()).answer(
        "POST", "/openai/v1/chat/completions", b'{"a": 1}'
    )
    assert isinstance(result, Mismatch) and "size limit" in result.message


def test_an_a2a_call_matches_whatever_its_json_rpc_id_and_mcp_keeps_its_own() -> None:
    """The A2A SDKs draw a new JSON-RPC id per call: a re-run matches its recording by
    everything else. MCP clients number their calls and match answers by id: kept."""
    import dataclasses

    ask = {"jsonrpc": "2.0", "id": "uuid-1", "method": "SendMessage", "params": {"m": 1}}
    recorded = dataclasses.replace(
        exchange(ask, "ok", 1.0), route="r", prefix="/r", api="a2a", path="/"
    )
    mcp = dataclasses.replace(recorded, api="mcp", prefix="/m", route="m")
    script = ReplayScript([recorded, mcp], Redactor())
    live = json.dumps({**ask, "id": "uuid-2"}).encode()
    assert isinstance(script.answer("POST", "/r/", live), Exchange)
    assert isinstance(script.answer("POST", "/m/", live), Mismatch)
    changed = json.dumps({**ask, "id": "uuid-3", "params": {"m": 2}}).encode()
    assert isinstance(ReplayScript([recorded], Redactor()).answer("POST", "/r/", changed), Mismatch)
