"""The proxy's hardening inside the real daemon: a spelled path meets the budget, a dot
segment is refused, an unpriced model under a budget is refused, the agent key decides."""

from __future__ import annotations

import json
import socket

import openai
import pytest

from agent_sre.gateway.agent_keys import key_digest

CHAT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})


def raw_post(address: str, path: str, body: str = CHAT) -> tuple[int, dict]:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        request = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"X-Agent-Id: a1\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(request.encode() + body.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(rest)


def test_the_daemon_refuses_every_bypass(make_daemon, provider_url: str) -> None:
    key = "ask_integration-test-key-not-a-secret"
    config = {
        "proxy": {
            "endpoint": "127.0.0.1:0",
            "routes": [
                {"name": "openai", "prefix": "/openai", "upstream": provider_url, "api": "openai"}
            ],
            "agent_keys": {"keys": [{"agent": "keyed", "sha256": key_digest(key)}]},
        },
        "admin": {"endpoint": "127.0.0.1:0", "token": "tok"},
        "budgets": {
            "budgets": [
                {
                    "name": "a1-tiny",
                    "scope": "agent",
                    "agents": ["a1"],
                    "limit_usd": 0.000001,
                    "window": "day",
                },
                {"name": "all", "scope": "agent", "limit_usd": 100, "window": "day"},
            ]
        },
    }
    daemon = make_daemon(config).start()
    proxy = daemon.addresses["proxy"]
    for path in ("/openai/v1/chat/completion%73", "/openai//v1/chat/completions/"):
        status, body = raw_post(proxy, path)
        assert (status, body["error"]["type"]) == (403, "budget_exceeded"), daemon.log()
    status, body = raw_post(proxy, "/openai/v1/%2e%2e/v1/chat/completions")
    assert (status, body["error"]["type"]) == (400, "invalid_path")
    unknown = json.dumps({"model": "made-up-model", "messages": []})
    status, body = raw_post(proxy, "/openai/v1/chat/completions", unknown)
    assert (status, body["error"]["type"]) == (403, "model_unpriced")

    # the agent key decides: a1's budget does not apply to the key's agent
    client = openai.OpenAI(
        base_url=f"http://{proxy}/openai/v1",
        api_key=key,
        max_retries=0,
        default_headers={"X-Agent-Id": "a1"},
    )
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            base_url=f"http://{proxy}/openai/v1", api_key="ask_unknown", max_retries=0
        ).chat.completions.create(model="gpt-4o-mini", messages=[])
    assert key not in daemon.log()
