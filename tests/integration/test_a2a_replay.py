"""A2A hand-offs are captured and replayed: a run of the official SDK's client against the
SDK's agent through the daemon (a message sent, a message streamed) is kept with its trace,
redacted, exported as a cassette, and answered again from it with the agent gone — by a
replay session in the daemon and by ``agent-sre replay serve`` — although the SDK draws a
new JSON-RPC id for every call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.types import Message, Part, Role, SendMessageRequest

from tests.support.a2a_agent import A2AAgent

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.support.daemon import DaemonProcess

TOKEN = "tok"
SECRET = "sk-live-abcdefghijklmnopqrstuv"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def admin(daemon: DaemonProcess, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        daemon.url("admin", path),
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def message(text: str, message_id: str) -> SendMessageRequest:
    return SendMessageRequest(
        message=Message(message_id=message_id, role=Role.ROLE_USER, parts=[Part(text=text)])
    )


async def run(base: str, headers: dict[str, str], card_from: str | None = None) -> list[str]:
    """The agent's run: a message sent, one streamed; what came back, as text."""
    async with httpx.AsyncClient(headers=headers, timeout=20) as http:
        card = await A2ACardResolver(http, card_from or base).get_agent_card()
        card.supported_interfaces[0].url = base + "/"
        out: list[str] = []
        for streaming, text, message_id in ((False, "plan " + SECRET, "m-1"), (True, "go", "m-2")):
            client = ClientFactory(ClientConfig(httpx_client=http, streaming=streaming)).create(
                card
            )
            async for event in client.send_message(message(text, message_id)):
                out.append(str(event.WhichOneof("payload")))
        return out


async def test_a2a_hand_offs_are_captured_and_replayed(
    make_daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    agent = A2AAgent("researcher").start()
    config = {
        "proxy": {
            "endpoint": "127.0.0.1:0",
            "routes": [{"name": "researcher", "prefix": "/r", "upstream": agent.url, "api": "a2a"}],
            "correlation": {"hold": "0s"},
        },
        "admin": {"endpoint": "127.0.0.1:0", "token": TOKEN},
        "replay": {"enabled": True},
    }
    daemon = make_daemon(config).start()
    base = f"http://{daemon.addresses['proxy']}/r"
    headers = {"X-Agent-Id": "planner", "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}
    try:
        recorded = await run(base, headers)
    finally:
        agent.stop()
    assert recorded[0] == "task" and "status_update" in recorded[1:]

    listed = admin(daemon, "/v1/traces?agent=planner")["traces"]
    assert [t["trace_id"] for t in listed] == [TRACE]
    assert "DELEGATION" in listed[0]["kinds"]

    # with the agent gone, a replay session answers the same run (new JSON-RPC ids and all)
    session = admin(daemon, "/v1/replay/sessions", {"trace_id": TRACE, "prefix": "/r"})
    replay_header = session["header"].split(": ", 1)
    replayed = await run(base, {**headers, replay_header[0]: replay_header[1]})
    assert replayed == recorded

    cassette = tmp_path / "a2a.json"
    exported = subprocess.run(
        [sys.executable, "-m", "agent_sre_daemon.cli", "replay", "export", TRACE,
         "--cassette", str(cassette), "--admin", daemon.addresses["admin"]],
        capture_output=True, text=True, timeout=30,
        env={**os.environ, "AGENT_SRE_ADMIN_TOKEN": TOKEN},
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    exchanges = json.loads(cassette.read_text())["exchanges"]
    assert {e["api"] for e in exchanges} == {"a2a"}
    assert [(e["method"], e["streamed"]) for e in exchanges] == [
        ("GET", False),  # the agent card
        ("POST", False),  # SendMessage
        ("POST", True),  # SendStreamingMessage: its events as they came, with their timing
    ]
    assert exchanges[2]["content_type"] == "text/event-stream"
    daemon.stop()
    # redaction: the planted key is in no stored byte, nor in the cassette
    stored = b"".join(
        p.read_bytes() for p in Path(daemon.config["state_dir"]).rglob("*") if p.is_file()
    )
    assert b"plan " in stored and SECRET.encode() not in stored
    assert SECRET not in cassette.read_text()

    server = subprocess.Popen(
        [sys.executable, "-m", "agent_sre_daemon.cli", "replay", "serve", "--cassette",
         str(cassette), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        url = line.split(" on ", 1)[1].split(" ", 1)[0]
        # the recorded card is served too; the client is pointed at the cassette's server.
        # The request bodies were stored redacted, so the live one is redacted to match.
        served = await run(url + "/r", {})
        assert served == recorded
    finally:
        server.terminate()
        server.wait(10)
