"""Bug 1: no spelling of a path bypasses a budget; dot segments never leave a route's
upstream base; a model without a price is the operator's decision (unpriced_models)."""

from __future__ import annotations

import asyncio
import json

import pytest

from agent_sre.gateway.paths import PathError, canonical_path

REFUSE_ALL = {
    "budgets": [{"name": "tiny", "scope": "agent", "limit_usd": 0.000001, "window": "day"}]
}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
CLAUDE = {
    "model": "claude-3-5-haiku-20241022",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "hi"}],
}


async def post_raw(url: str, path: str, body: dict, method: str = "POST") -> tuple[int, dict]:
    """A request whose path goes on the wire exactly as written (no client normalisation)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    payload = json.dumps(body).encode()
    writer.write(
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"X-Agent-Id: a1\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
        + payload
    )
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    if b"chunked" in head.lower():
        size, _, rest = rest.partition(b"\r\n")
        rest = rest[: int(size, 16)]
    return status, json.loads(rest) if rest else {}


@pytest.mark.parametrize(
    "path",
    [
        "/openai/v1/chat/completion%73",
        "/openai/v1/chat/%63ompletions",
        "/openai/v1/chat%2Fcompletions".replace("%2F", "/"),
        "/openai//v1//chat/completions",
        "/openai/v1/chat/completions/",
        "/openai/v1/chat/completions//",
        "/%6fpenai/v1/chat/completions",
    ],
)
async def test_every_spelling_of_an_llm_path_meets_the_budget(make_proxy, provider, path) -> None:
    proxy = await make_proxy(budgets=REFUSE_ALL)
    status, body = await post_raw(proxy.url, path, CHAT)
    assert status == 403, body
    assert body["error"]["type"] == "budget_exceeded"
    assert provider.calls == 0


@pytest.mark.parametrize(
    "path", ["/anthropic/v1/message%73", "/anthropic//v1/messages", "/anthropic/v1/messages/"]
)
async def test_anthropic_spellings_meet_the_budget(make_proxy, provider, path) -> None:
    proxy = await make_proxy(budgets=REFUSE_ALL)
    status, body = await post_raw(proxy.url, path, CLAUDE)
    assert status == 403, body
    assert body["error"]["type"] == "budget_exceeded"
    assert provider.calls == 0


async def test_a_spelled_path_is_forwarded_in_its_canonical_form(proxy, provider) -> None:
    status, body = await post_raw(proxy.url, "/openai//v1/chat/completion%73", CHAT)
    assert status == 200, body
    assert provider.requests[-1].path == "/v1/chat/completions"
    # ... and the proxy priced it: an LLM span with usage and cost
    attrs = proxy.span_attrs()
    assert attrs["agent.span.kind"] == "LLM_INFERENCE"
    assert attrs["agent_sre.cost_usd"] > 0


@pytest.mark.parametrize(
    "path",
    [
        "/openai/v1/../v1/chat/completions",
        "/openai/v1/%2e%2e/chat/completions",
        "/openai/v1/%2E./chat/completions",
        "/openai/..;/v1/chat/completions",
        "/openai/v1/./chat/completions",
        "/tools/search/..",
        "/tools/search/%2e%2e/v1/chat/completions",
        "/openai/v1/chat%2fcompletions",
        "/openai/v1/chat%5ccompletions",
        "/openai/v1/chat/completions%00",
    ],
)
async def test_dot_segments_and_encoded_separators_are_refused(proxy, provider, path) -> None:
    status, body = await post_raw(proxy.url, path, CHAT)
    assert status == 400
    error = body.get("error", body)
    assert error["type"] == "invalid_path"
    assert provider.calls == 0


async def test_a_tool_route_cannot_climb_to_another_upstream_path(proxy, provider) -> None:
    status, body = await post_raw(proxy.url, "/tools/search/../../v1/chat/completions", CHAT)
    assert status == 400
    assert body["error"]["type"] == "invalid_path"
    assert provider.calls == 0


def test_canonical_path_unit() -> None:
    assert canonical_path("/a/%7e%41/b%20c") == "/a/~A/b%20c"
    assert canonical_path("/a//b/") == "/a/b/"
    assert canonical_path("/") == "/"
    assert canonical_path("/a/%252e%252e") == "/a/%252e%252e"  # decoded once only
    assert canonical_path("/a/..x/.b") == "/a/..x/.b"  # not dot segments
    for bad in ("/a/..", "/a/.%2e", "/a/%2E%2E;jsessionid=1", "/a/%2f", "a/b"):
        with pytest.raises(PathError):
            canonical_path(bad)


# -- unpriced models --------------------------------------------------------------------

BUDGET = {"budgets": [{"name": "daily", "scope": "agent", "limit_usd": 100, "window": "day"}]}


async def test_unknown_model_under_a_budget_is_refused_by_default(make_proxy, provider) -> None:
    proxy = await make_proxy(budgets=BUDGET)
    status, body = await post_raw(
        proxy.url, "/openai/v1/chat/completions", {**CHAT, "model": "no-such-model-xyz"}
    )
    assert status == 403
    assert body["error"]["type"] == "model_unpriced"
    assert "unpriced_models" in body["error"]["message"]
    assert provider.calls == 0
    assert proxy.metric("agent_sre_budget_denied_requests_total", {"budget": "unpriced_model"})


async def test_a_request_without_a_readable_model_is_unpriced(make_proxy, provider) -> None:
    proxy = await make_proxy(budgets=BUDGET)
    for body in ({"messages": []}, {"model": ["gpt-4o"], "messages": []}):
        status, answer = await post_raw(proxy.url, "/openai/v1/chat/completions", body)
        assert status == 403, answer
        assert answer["error"]["type"] == "model_unpriced"
    assert provider.calls == 0


async def test_unknown_model_without_a_budget_passes(proxy, provider) -> None:
    status, _ = await post_raw(
        proxy.url, "/openai/v1/chat/completions", {**CHAT, "model": "no-such-model-xyz"}
    )
    assert status == 200
    assert provider.calls == 1


async def test_unpriced_models_allow(make_proxy, provider) -> None:
    proxy = await make_proxy(budgets={**BUDGET, "unpriced_models": "allow"})
    status, _ = await post_raw(
        proxy.url, "/openai/v1/chat/completions", {**CHAT, "model": "no-such-model-xyz"}
    )
    assert status == 200
    assert proxy.metric("agent_sre_llm_unpriced_requests_total", {"model": "no-such-model-xyz"})


async def test_unpriced_models_price_as(make_proxy, provider) -> None:
    proxy = await make_proxy(budgets={**BUDGET, "unpriced_models": {"price_as": "gpt-4o"}})
    status, _ = await post_raw(
        proxy.url, "/openai/v1/chat/completions", {**CHAT, "model": "no-such-model-xyz"}
    )
    assert status == 200
    attrs = proxy.span_attrs()
    assert attrs["agent_sre.cost_usd"] > 0
    budgets = await proxy.server.gate.budgets(proxy.server.clock.time())
    assert budgets[0]["subjects"][0]["spent_usd"] == pytest.approx(attrs["agent_sre.cost_usd"])


async def test_price_as_an_unpriced_model_is_a_configuration_error(make_proxy) -> None:
    with pytest.raises(ValueError, match="price_as"):
        await make_proxy(budgets={**BUDGET, "unpriced_models": {"price_as": "nope-model-1"}})


async def post_bytes(url: str, path: str, payload: bytes) -> tuple[int, dict]:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Agent-Id: a1\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
        + payload
    )
    data = await reader.read()
    writer.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(rest) if rest else {}


@pytest.mark.parametrize(
    "payload",
    [
        b'{"model":"gpt-4o","model":"gpt-4o-mini","messages":[]}',
        b'{"model":"gpt-4o-mini","max_tokens":1,"max_tokens":100000,"messages":[]}',
        b'{"model":"gpt-4o-mini","n":1,"n":100,"messages":[]}',
    ],
)
async def test_a_deciding_key_named_twice_is_unpriced(make_proxy, provider, payload) -> None:
    """Parsers disagree on which duplicate counts: the proxy cannot tell what will run."""
    proxy = await make_proxy(budgets=BUDGET)
    status, body = await post_bytes(proxy.url, "/openai/v1/chat/completions", payload)
    assert status == 403, body
    assert body["error"]["type"] == "model_unpriced"
    assert provider.calls == 0


async def test_duplicate_keys_elsewhere_are_fine(make_proxy, provider) -> None:
    proxy = await make_proxy(budgets=BUDGET)
    payload = b'{"model":"gpt-4o-mini","messages":[{"role":"user","role":"user","content":"x"}]}'
    status, _ = await post_bytes(proxy.url, "/openai/v1/chat/completions", payload)
    assert status == 200


def test_a_remembered_canonical_form_is_the_same_and_a_refusal_is_never_remembered() -> None:
    from agent_sre.gateway.paths import PathError, canonical_path
    from agent_sre_daemon.proxy.server import _canonical

    for raw in ("/openai/v1/chat/completion%73", "/openai//v1/models/", "/t" + "/x" * 300):
        assert _canonical(raw) == _canonical(raw) == canonical_path(raw)
    for _ in range(2):
        with pytest.raises(PathError):
            _canonical("/openai/v1/%2e%2e/admin")
