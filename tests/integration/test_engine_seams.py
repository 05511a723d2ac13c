"""A toy engine added through the public seams only (an ``agent_sre.components`` entry point):
started, fed spans, its stage run on real proxied calls, its metric exported, its signal
listed by /v1/signals after a reload, stopped within the shutdown deadline."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openai
import pytest

from tests.support.durability import Sender
from tests.support.metrics import scrape

if TYPE_CHECKING:
    from tests.support.daemon import DaemonProcess

ROOT = Path(__file__).parents[2]


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def post(url: str, token: str) -> Any:
    request = urllib.request.Request(
        url, method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def install_plugin(where: Path) -> str:
    """Declares the toy engine as an installed distribution's entry point; returns the
    PYTHONPATH that makes the daemon find it."""
    dist = where / "toy_engine-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-engine\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[agent_sre.components]\ntoy = tests.support.toy_engine:ToyEngine\n"
    )
    # ahead of whatever path the tests run with (a worktree's src/ and daemon/, say)
    return os.pathsep.join(filter(None, [str(where), str(ROOT), os.environ.get("PYTHONPATH")]))


@pytest.fixture
def toy_daemon(make_daemon, provider_url: str, tmp_path: Path) -> DaemonProcess:
    config = {
        "proxy": {
            "endpoint": "127.0.0.1:0",
            # the proxy's spans go in at once (no wait for an agent's own span of the call)
            "correlation": {"hold": "0s"},
            "routes": [
                {"name": "openai", "prefix": "/openai", "upstream": provider_url, "api": "openai"}
            ],
        },
        "admin": {"endpoint": "127.0.0.1:0", "token": "tok"},
        "node": {"name": "test-node", "shutdown_timeout": "20s"},
    }
    return make_daemon(config, PYTHONPATH=install_plugin(tmp_path / "site")).start()


def test_a_toy_engine_joins_through_the_seams(toy_daemon: DaemonProcess) -> None:
    daemon = toy_daemon
    toy = daemon.url("admin", "/v1/toy")
    assert get(toy)["started"] is True
    assert get(daemon.url("admin", "/v1/status"))["toy"] == {"started": True}

    # its span observer sees received spans, and its metric is exported
    sender = Sender(daemon.addresses["otlp_grpc"])
    assert sender.send(spans=7)
    sender.close()
    assert get(toy)["spans"] == 7
    metrics = scrape(daemon.url("metrics", "/metrics"))
    assert metrics[("toy_engine_spans_total", ())] == 7

    # its stage runs on real proxied calls: it lets one through and answers another itself
    client = openai.OpenAI(
        base_url=f"http://{daemon.addresses['proxy']}/openai/v1", api_key="sk-x", max_retries=0
    )
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"X-Toy-Answer": "1"},
        )
    assert refused.value.status_code == 418
    seen = get(toy)
    assert seen["calls_in"] == 2
    assert seen["calls_out"] == 2
    # the proxy's own span of the first call goes through the toy's observer too (it is
    # emitted on the call's way back, just after the client has its answer)
    deadline = time.monotonic() + 5
    while get(toy)["spans"] < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert get(toy)["spans"] >= 8

    # it sees the other components' services and actions by name, never their classes
    assert "slo" in seen["services"]
    assert {"block_agent", "unblock_agent"} <= set(seen["actions"])
    done = post(daemon.url("admin", "/v1/toy/block/agent-x"), "tok")["done"]
    assert done.startswith("agent agent-x blocked")
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"X-Agent-Id": "agent-x"},
        )

    # a reload reaches it, and its signal is listed in the one shape
    post(daemon.url("admin", "/v1/reload"), "tok")
    assert get(toy)["reloads"] == 1
    listed = get(daemon.url("admin", "/v1/signals?source=toy"))["signals"]
    assert [(s["type"], s["state"], s["labels"]) for s in listed] == [
        ("toy_reloaded", "firing", {"engine": "toy"})
    ]
    assert get(daemon.url("admin", "/v1/signals?type=nothing"))["signals"] == []

    # stopped within the node's one shutdown deadline
    assert daemon.stop() == 0
    stopped = json.loads((Path(daemon.config["state_dir"]) / "toy-stopped.json").read_text())
    assert 0 < stopped["seconds_left"] <= 20


def test_signals_query_is_checked(toy_daemon: DaemonProcess) -> None:
    with pytest.raises(urllib.error.HTTPError) as bad:
        get(toy_daemon.url("admin", "/v1/signals?since=yesterday"))
    assert bad.value.code == 400
    assert json.load(bad.value)["error"]["type"] == "invalid_argument"
