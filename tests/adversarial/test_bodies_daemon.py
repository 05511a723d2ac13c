"""Class 2 of issue 18 against the real daemon and command: a proxied body nested 100,000
deep is refused in the provider's own error shape (never forwarded, never a 500) on every
kind of route, and the daemon keeps serving; OTLP/JSON nested that deep is a 400; a crafted
cassette stops ``agent-sre replay serve`` with a message naming the file and the place,
not a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import openai
import pytest

from tests.adversarial.admin import TOKEN

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.support.daemon import DaemonProcess

DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"messages":' + b'{"a":' * 100_000 + b"1" + b"}" * 100_001


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": content_type})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def daemon(make_daemon: Callable[..., DaemonProcess], provider_url: str) -> DaemonProcess:
    routes = [
        {"name": "openai", "prefix": "/openai", "upstream": provider_url, "api": "openai"},
        {"name": "anthropic", "prefix": "/anthropic", "upstream": provider_url,
         "api": "anthropic"},
        {"name": "mcp", "prefix": "/mcp", "upstream": provider_url, "api": "mcp"},
        {"name": "search", "prefix": "/tools/search", "upstream": provider_url + "/tool",
         "api": "tool", "tool": "web_search"},
        {"name": "raw", "prefix": "/raw", "upstream": provider_url, "api": "passthrough"},
    ]  # fmt: skip
    return make_daemon({
        "admin": {"endpoint": "127.0.0.1:0", "token": TOKEN},
        "proxy": {"endpoint": "127.0.0.1:0", "routes": routes},
        "replay": {"enabled": True},
        "rollouts": {"rollouts": [{"name": "canary", "route": "openai", "baseline": "gpt-4o",
                                   "candidate": "gpt-4.1",
                                   "steps": [{"weight": 50, "pause": True}]}]},
    }).start()  # fmt: skip


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["array", "object"])
def test_a_deep_proxied_body_is_refused_in_the_providers_shape(
    daemon: DaemonProcess, body: bytes
) -> None:
    """Instance: a JSON body nested 100,000 deep answered 500 on the proxy."""
    for path in ("/openai/v1/chat/completions", "/anthropic/v1/messages", "/mcp/",
                 "/tools/search/query", "/raw/anything"):  # fmt: skip
        status, answer = post(daemon.url("proxy", path), body)
        assert status == 400, (path, answer[:300])
        error: Any = json.loads(answer)
        text = json.dumps(error)
        assert "nested deeper than" in text, (path, text[:300])
    client = openai.OpenAI(base_url=daemon.url("proxy", "/openai/v1"), api_key="sk-x",
                           max_retries=0)  # fmt: skip
    reply = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "still there?"}]
    )
    assert reply.choices


def test_deep_otlp_json_is_a_400(daemon: DaemonProcess) -> None:
    status, answer = post(daemon.url("otlp_http", "/v1/traces"), DEEP)
    assert status == 400, answer[:300]
    status, _ = post(daemon.url("otlp_http", "/v1/traces"), b'{"resourceSpans": []}')
    assert status == 200


def cassette(tmp: Path, **overrides: Any) -> Path:
    exchange = {"route": "openai", "prefix": "/openai", "api": "openai", "method": "POST",
                "path": "/v1/chat/completions", "request": '{"model": "gpt-4o"}',
                "status": 200, "chunks": [{"at": 0.0, "data": '{"id": "x"}'}]}  # fmt: skip
    data: dict[str, Any] = {"format": "agent-sre-cassette", "version": 1,
                            "trace_id": "ab" * 16, "exchanges": [exchange], "trace": {},
                            "redaction": []}  # fmt: skip
    for key, value in overrides.items():
        (exchange if key in exchange else data)[key] = value
    path = tmp / "crafted.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        ({"redaction": ["(unclosed"]}, "redaction[0]"),
        ({"request": "[" * 100_000 + "]" * 100_000}, "exchanges[0].request"),
        ({"chunks": [{"at": float("nan"), "data": "x"}]}, "exchanges[0]"),
    ],
)
def test_a_crafted_cassette_stops_replay_serve_with_a_message(
    tmp_path: Path, overrides: dict[str, Any], where: str
) -> None:
    """Instance: a crafted cassette (a bad regex, a deep body) crashed ``replay serve``."""
    path = cassette(tmp_path, **overrides)
    done = subprocess.run(
        [sys.executable, "-m", "agent_sre_daemon.cli", "replay", "serve", "--cassette",
         str(path), "--listen", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"{path}: {where}" in done.stderr, done.stderr[-500:]
