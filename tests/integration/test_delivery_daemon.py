"""Progressive delivery in the real daemon: a canary judged on calls made with the official
OpenAI SDK through the proxy to the stand-in provider serving two models of set quality,
controlled with the admin API and ``agent-sre rollout``, its state kept across a restart."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openai
import pytest

from agent_sre_daemon.cli import exits
from agent_sre_daemon.cli.main import main
from tests.support.metrics import scrape

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.support.daemon import DaemonProcess

ROOT = Path(__file__).parents[2]
QUALITY = {"gpt-4.1": {"error_rate": 0.5}}


@pytest.fixture
def two_models() -> Iterator[str]:
    """The stand-in provider; gpt-4.1 fails every other call, gpt-4o never does."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests/fakes/provider.py"), "--models", json.dumps(QUALITY)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    yield url
    proc.terminate()
    proc.wait(10)


def request(url: str, method: str = "GET", body: Any = None, token: str | None = "tok") -> Any:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    call = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(call, timeout=10) as response:
        return json.load(response)


def config(provider: str) -> dict[str, Any]:
    checks = [{"metric": "success_ratio", "max_relative_change": 0.05}]
    return {
        "proxy": {
            "routes": [
                {"name": "openai", "prefix": "/openai", "upstream": provider, "api": "openai"}
            ]
        },
        "admin": {"token": "tok"},
        "rollouts": {
            "evaluate_every": "100ms",
            "rollouts": [
                {
                    "name": "gpt41",
                    "route": "openai",
                    "baseline": "gpt-4o",
                    "candidate": "gpt-4.1",
                    "steps": [{"weight": 50, "duration": "1h"}, {"weight": 100, "pause": True}],
                    "analysis": {"min_samples": 10, "checks": checks},
                },
                {
                    "name": "mini",
                    "route": "openai",
                    "baseline": "gpt-4o-mini",
                    "candidate": "gpt-4.1-mini",
                    "steps": [{"weight": 10, "duration": "1h"}, {"weight": 50, "pause": True}],
                },
            ],
        },
    }


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


def test_a_worse_canary_is_rolled_back_by_the_daemon(
    make_daemon: Callable[..., DaemonProcess],
    two_models: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    daemon = make_daemon(config(two_models)).start()
    admin = daemon.addresses["admin"]
    rollouts = daemon.url("admin", "/v1/rollouts")
    listed = request(rollouts)["rollouts"]
    assert [(r["name"], r["phase"], r["weight"]) for r in listed] == [
        ("gpt41", "progressing", 50),
        ("mini", "progressing", 10),
    ]

    client = openai.OpenAI(
        base_url=f"http://{daemon.addresses['proxy']}/openai/v1", api_key="sk-x", max_retries=0
    )
    answered: dict[str, set[str]] = {}
    for index in range(60):
        task = f"task-{index}"
        try:
            reply = client.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"X-Agent-Task-Id": task},
            )
            answered.setdefault(task, set()).add(reply.model)
        except openai.InternalServerError:
            answered.setdefault(task, set()).add("error")
    assert {"gpt-4o", "gpt-4.1"} <= set().union(*answered.values())

    def rolled_back() -> bool:
        return bool(request(f"{rollouts}/gpt41")["phase"] == "rolled_back")

    wait_for(rolled_back, "gpt41 rolled back")
    shown = request(f"{rollouts}/gpt41")
    assert shown["weight"] == 0
    assert shown["step"] == 0
    assert "success_ratio" in shown["reason"]
    assert shown["analysis"]["verdict"] == "fail"
    signals = request(daemon.url("admin", "/v1/signals?source=delivery"))["signals"]
    assert [s["type"] for s in signals] == ["rollout_rolled_back"]
    assert signals[0]["labels"] == {"rollout": "gpt41", "route": "openai"}

    metrics = scrape(daemon.url("metrics", "/metrics"))
    weight = ("agent_sre_rollout_weight", (("rollout", "gpt41"), ("variant", "candidate")))
    assert metrics[weight] == 0
    assert metrics[("agent_sre_rollout_phase", (("rollout", "gpt41"),))] == 4
    failed = (("result", "error"), ("rollout", "gpt41"), ("variant", "candidate"))
    assert metrics[("agent_sre_rollout_requests_total", failed)] >= 5

    # the CLI reads and controls rollouts; changes need the token
    monkeypatch.delenv("AGENT_SRE_ADMIN_TOKEN", raising=False)
    assert main(["rollout", "list", "--admin", admin]) == exits.OK
    out = capsys.readouterr().out
    assert "gpt41" in out and "rolled_back" in out
    assert main(["rollout", "status", "gpt41", "--json", "--admin", admin]) == exits.OK
    assert json.loads(capsys.readouterr().out)["current_analysis"]["verdict"] == "fail"
    assert main(["rollout", "pause", "mini", "--admin", admin]) == exits.FAILURE
    assert "AGENT_SRE_ADMIN_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("AGENT_SRE_ADMIN_TOKEN", "tok")
    assert main(["rollout", "pause", "mini", "--admin", admin]) == exits.OK
    assert capsys.readouterr().out.strip() == "rollout mini: paused, step 1/2, candidate 10%"
    assert main(["rollout", "resume", "mini", "--admin", admin]) == exits.OK
    assert main(["rollout", "promote", "mini", "--admin", admin]) == exits.OK
    assert "paused, step 2/2, candidate 50%" in capsys.readouterr().out
    assert main(["rollout", "resume", "mini", "--admin", admin]) == exits.FAILURE
    assert "awaits promotion" in capsys.readouterr().err
    assert main(["rollout", "abort", "gpt41", "--admin", admin]) == exits.FAILURE
    assert "is rolled_back" in capsys.readouterr().err
    assert main(["rollout", "status", "nope", "--admin", admin]) == exits.FAILURE
    assert "no rollout named 'nope'" in capsys.readouterr().err

    # the API refuses what it cannot do, and says why
    for url, method, body, code in [
        (f"{rollouts}/nope/promote", "POST", {}, 404),
        (f"{rollouts}/mini/explode", "POST", {}, 404),
        (rollouts, "POST", {"name": "x"}, 400),
        (rollouts, "POST", {"name": "x", "route": "nope", "candidate": "m",
                            "steps": [{"weight": 5, "duration": "1m"}]}, 400),
        (rollouts, "POST", {"name": "mini", "route": "openai", "candidate": "m",
                            "steps": [{"weight": 5, "duration": "1m"}]}, 409),
    ]:  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as refused:
            request(url, method, body)
        assert refused.value.code == code, (url, body)
        assert json.load(refused.value)["error"]["message"]
    with pytest.raises(urllib.error.HTTPError) as unauthorized:
        request(f"{rollouts}/mini/abort", "POST", {}, token="wrong")
    assert unauthorized.value.code == 401
    posted = {"name": "posted", "route": "openai", "baseline": "gpt-3.5-turbo",
              "candidate": "gpt-4o-mini", "steps": [{"weight": 5, "duration": "1m"}]}  # fmt: skip
    assert request(rollouts, "POST", posted)["phase"] == "progressing"

    # state survives a restart
    assert daemon.stop() == 0
    daemon.start()
    rollouts = daemon.url("admin", "/v1/rollouts")
    phases = {r["name"]: (r["phase"], r["step"]) for r in request(rollouts)["rollouts"]}
    assert phases == {
        "gpt41": ("rolled_back", 0),
        "mini": ("paused", 1),
        "posted": ("progressing", 0),
    }


def test_posted_rollouts_keep_their_samples_across_a_restart_and_can_be_deleted(
    make_daemon: Callable[..., DaemonProcess],
    two_models: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = config(two_models)
    settings["rollouts"]["rollouts"] = settings["rollouts"]["rollouts"][1:]  # "mini" only
    daemon = make_daemon(settings).start()
    rollouts = daemon.url("admin", "/v1/rollouts")
    posted = {
        "name": "posted",
        "route": "openai",
        "baseline": "gpt-3.5-turbo",
        "candidate": "gpt-4o",
        "steps": [{"weight": 50, "duration": "1h"}, {"weight": 100, "duration": "1h"}],
        "analysis": {"min_samples": 1000},  # no verdict during the test
    }
    assert request(rollouts, "POST", posted)["phase"] == "progressing"
    request(rollouts, "POST", {**posted, "name": "done", "baseline": "gpt-4o-mini-2"})
    request(f"{rollouts}/done/abort", "POST", {})

    def ask(model: str, task: str) -> str:
        client = openai.OpenAI(
            base_url=f"http://{daemon.addresses['proxy']}/openai/v1", api_key="sk-x", max_retries=0
        )
        reply = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"X-Agent-Task-Id": task},
        )
        return reply.model

    answered = {ask("gpt-3.5-turbo", f"task-{index}") for index in range(30)}
    assert answered == {"gpt-3.5-turbo", "gpt-4o"}
    samples = request(f"{rollouts}/posted")["samples"]
    assert samples["baseline"] + samples["candidate"] == 30
    assert min(samples.values()) > 0

    # the step's samples survive a restart (and the API's rollouts with them)
    assert daemon.stop() == 0
    daemon.start()
    admin = daemon.addresses["admin"]
    rollouts = daemon.url("admin", "/v1/rollouts")
    assert request(f"{rollouts}/posted")["samples"] == samples
    assert "rollout samples restored: posted" in daemon.log()
    ask("gpt-3.5-turbo", "one-more")
    shown = request(f"{rollouts}/posted")
    assert sum(shown["samples"].values()) == 31
    assert shown["current_analysis"]["checks"][0]["baseline_samples"] >= samples["baseline"]

    # deleting: the token is needed, unknown names are 404, file rollouts are not the API's
    monkeypatch.delenv("AGENT_SRE_ADMIN_TOKEN", raising=False)
    assert main(["rollout", "delete", "posted", "--admin", admin]) == exits.FAILURE
    assert "AGENT_SRE_ADMIN_TOKEN" in capsys.readouterr().err
    for name, token, code, kind in [
        ("posted", "wrong", 401, "unauthorized"),
        ("nope", "tok", 404, "rollout_not_found"),
        ("mini", "tok", 409, "conflict"),
    ]:
        with pytest.raises(urllib.error.HTTPError) as refused:
            request(f"{rollouts}/{name}", "DELETE", token=token)
        assert refused.value.code == code, name
        assert json.load(refused.value)["error"]["type"] == kind
    monkeypatch.setenv("AGENT_SRE_ADMIN_TOKEN", "tok")
    assert main(["rollout", "delete", "nope", "--admin", admin]) == exits.FAILURE
    assert "no rollout named 'nope'" in capsys.readouterr().err
    assert main(["rollout", "delete", "mini", "--admin", admin]) == exits.FAILURE
    assert "declared in the configuration file" in capsys.readouterr().err

    # a running rollout is aborted first (a warning, not a page), and the answer says so
    assert main(["rollout", "delete", "posted", "--admin", admin]) == exits.OK
    said = capsys.readouterr().out.strip()
    assert said == "rollout posted was running: aborted (every call to the baseline), then deleted"
    signals = request(daemon.url("admin", "/v1/signals?source=delivery"))["signals"]
    assert [(s["type"], s["labels"]["rollout"], s["severity"]) for s in signals] == [
        ("rollout_aborted", "posted", "warning")
    ]
    assert {ask("gpt-3.5-turbo", f"task-{index}") for index in range(10)} == {"gpt-3.5-turbo"}
    deleted = request(f"{rollouts}/done", "DELETE")
    assert deleted["deleted"] == "done"
    assert deleted["stopped"] is False
    assert deleted["message"] == "rollout done deleted (it was aborted)"
    assert deleted["rollout"]["phase"] == "aborted"
    with pytest.raises(urllib.error.HTTPError) as gone:
        request(f"{rollouts}/posted")
    assert gone.value.code == 404
    metrics = scrape(daemon.url("metrics", "/metrics"))
    assert ("agent_sre_rollout_phase", (("rollout", "posted"),)) not in metrics
    assert metrics[("agent_sre_rollout_phase", (("rollout", "mini"),))] == 1

    # and they stay deleted
    assert daemon.stop() == 0
    daemon.start()
    listed = request(daemon.url("admin", "/v1/rollouts"))["rollouts"]
    assert [r["name"] for r in listed] == ["mini"]
