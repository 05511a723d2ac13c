"""Who may read what: captured bodies and replay sessions need the admin token, loopback or
not; the daemon's own control headers (``x-agent-sre-*``) never reach a provider, shadow
mirrors included.

An agent on the node is a local client like any other: without the token it must not read
another agent's prompts and answers (the whole trace, its cassette, a diff of two runs), nor
learn the header value that answers calls from another agent's recorded run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import openai
import pytest

from tests.support.stand_in import ThreadedProvider

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.fakes.provider import FakeProvider
    from tests.support.daemon import DaemonProcess

TOKEN = "read-access-token"


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with ThreadedProvider() as provider:
        yield provider


def config(url: str, token: str = TOKEN) -> dict[str, Any]:
    return {
        "proxy": {
            "correlation": {"hold": "0s"},
            "routes": [{"name": "openai", "prefix": "/openai", "upstream": url, "api": "openai"}],
        },
        "admin": {"token": token},
        "replay": {"enabled": True},
        "rollouts": {
            "rollouts": [
                {
                    "name": "mirror",
                    "route": "openai",
                    "baseline": "gpt-4o-mini",
                    "candidate": "gpt-4.1-mini",
                    "mode": "shadow",
                    "shadow_budget_usd": 5,
                    "steps": [{"weight": 100, "duration": "1h"}],
                }
            ]
        },
    }


def request(url: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def a_recorded_run(daemon: DaemonProcess) -> str:
    """One call through the proxy, captured; returns its trace id."""
    client = openai.OpenAI(
        base_url=f"http://{daemon.addresses['proxy']}/openai/v1", api_key="sk-x", max_retries=0
    )
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "my private prompt"}]
    )
    for _ in range(50):
        status, listed = request(daemon.url("admin", "/v1/traces"))
        assert status == 200, listed
        if listed["traces"]:
            return str(listed["traces"][0]["trace_id"])
        __import__("time").sleep(0.1)
    raise AssertionError("the call's trace was never listed")


def test_captured_bodies_and_sessions_need_the_token_even_on_loopback(
    make_daemon: Callable[..., DaemonProcess],
    fake: FakeProvider,
) -> None:
    daemon = make_daemon(config(fake.url)).start()
    trace_id = a_recorded_run(daemon)
    status, session = request(
        daemon.url("admin", "/v1/replay/sessions"), TOKEN, {"trace_id": trace_id}
    )
    assert status == 201, session
    header_value = session["header"].split(": ", 1)[1]
    private = [
        f"/v1/traces/{trace_id}",
        f"/v1/traces/{trace_id}/cassette",
        f"/v1/traces/diff?a={trace_id}&b={trace_id}",
        "/v1/replay/sessions",
    ]
    for path in private:
        status, body = request(daemon.url("admin", path))
        assert status == 401 and body["error"]["type"] == "unauthorized", (path, body)
        status, body = request(daemon.url("admin", path), "wrong-token")
        assert status == 401, (path, body)
        status, body = request(daemon.url("admin", path), TOKEN)
        assert status == 200, (path, body)
    # what holds no body stays open to loopback readers
    for path in ("/v1/traces", f"/v1/traces/{trace_id}/spans", "/v1/status", "/v1/signals"):
        status, body = request(daemon.url("admin", path))
        assert status == 200, (path, body)
        assert "my private prompt" not in json.dumps(body), path
        assert header_value not in json.dumps(body), path
    # the session's header value is shown to whoever opened it and to token holders only
    status, listed = request(daemon.url("admin", "/v1/replay/sessions"), TOKEN)
    assert listed["sessions"][0]["header"] == session["header"]


def test_with_no_token_configured_captured_bodies_cannot_be_read(
    make_daemon: Callable[..., DaemonProcess],
    fake: FakeProvider,
) -> None:
    daemon = make_daemon(config(fake.url, token="")).start()
    trace_id = a_recorded_run(daemon)
    for path in (f"/v1/traces/{trace_id}", f"/v1/traces/{trace_id}/cassette"):
        status, body = request(daemon.url("admin", path))
        assert status == 403 and body["error"]["type"] == "reads_disabled", (path, body)
        assert "admin.token" in body["error"]["message"]


def test_a_session_refusal_signal_names_no_header_value_and_no_body(
    make_daemon: Callable[..., DaemonProcess],
    fake: FakeProvider,
) -> None:
    daemon = make_daemon(config(fake.url)).start()
    trace_id = a_recorded_run(daemon)
    _, session = request(daemon.url("admin", "/v1/replay/sessions"), TOKEN, {"trace_id": trace_id})
    header_value = session["header"].split(": ", 1)[1]
    client = openai.OpenAI(
        base_url=f"http://{daemon.addresses['proxy']}/openai/v1",
        api_key="sk-x",
        max_retries=0,
        default_headers={"X-Agent-SRE-Replay": header_value},
    )
    with pytest.raises(openai.ConflictError, match="another prompt"):  # the caller sees why
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "another prompt"}]
        )
    status, signals = request(daemon.url("admin", "/v1/signals?type=replay_mismatch"))
    (signal,) = signals["signals"]
    assert signal["labels"]["session_id"] == session["id"] != header_value
    assert header_value not in json.dumps(signal)
    assert "another prompt" not in json.dumps(signal) and "my private prompt" not in json.dumps(
        signal
    )


def test_control_headers_never_reach_a_provider_nor_a_shadow_mirror(
    make_daemon: Callable[..., DaemonProcess],
    fake: FakeProvider,
) -> None:
    daemon = make_daemon(config(fake.url)).start()
    client = openai.OpenAI(
        base_url=f"http://{daemon.addresses['proxy']}/openai/v1",
        api_key="sk-x",
        max_retries=0,
        default_headers={
            "x-agent-sre-fault": "error; status=500",  # header faults are off: ignored
            "X-Agent-SRE-Anything": "ours",
            "X-Agent-Id": "planner",
        },
    )
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "mirror me"}]
    )
    # a passthrough session sends a call it has no recording for on to the provider
    trace_id = a_recorded_run(daemon)
    _, session = request(
        daemon.url("admin", "/v1/replay/sessions"),
        TOKEN,
        {"trace_id": trace_id, "passthrough": True},
    )
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "not recorded"}],
        extra_headers={"X-Agent-SRE-Replay": session["header"].split(": ", 1)[1]},
    )
    for _ in range(50):  # shadow copies go in the background
        models = [r.json()["model"] for r in fake.requests]
        if models.count("gpt-4.1-mini") >= 3:
            break
        __import__("time").sleep(0.1)
    assert models.count("gpt-4.1-mini") >= 3, models  # the mirrors were sent
    for received in fake.requests:
        ours = [name for name in received.headers if name.lower().startswith("x-agent-sre")]
        assert ours == [], (received.json()["model"], ours)
        if b"mirror me" in received.body:  # identity headers still go, to mirrors too
            assert received.headers.get("X-Agent-Id") == "planner"


def test_the_cli_sends_the_token_on_reads(
    make_daemon: Callable[..., DaemonProcess],
    fake: FakeProvider,
    tmp_path: Any,
) -> None:
    daemon = make_daemon(config(fake.url)).start()
    trace_id = a_recorded_run(daemon)

    def cli(*args: str, token: str = "") -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "AGENT_SRE_ADMIN_TOKEN"}
        env["AGENT_SRE_ADMIN"] = daemon.addresses["admin"]
        if token:
            env["AGENT_SRE_ADMIN_TOKEN"] = token
        return subprocess.run(
            [sys.executable, "-m", "agent_sre_daemon.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    refused = cli("replay", "export", trace_id)
    assert refused.returncode != 0
    assert "AGENT_SRE_ADMIN_TOKEN" in refused.stderr, refused.stderr
    cassette = tmp_path / "run.json"
    exported = cli("replay", "export", trace_id, "--cassette", str(cassette), token=TOKEN)
    assert exported.returncode == 0, exported.stderr
    assert "my private prompt" in cassette.read_text()
    listed = cli("replay", "diff", trace_id, trace_id, token=TOKEN)
    assert listed.returncode == 0 and "no difference" in listed.stdout, listed.stderr
