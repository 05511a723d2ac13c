"""Saved state never stops the daemon from starting: every file the daemon keeps in
``state_dir`` (SLO windows, rollouts and their samples, incidents with the notification
outbox and throttles, chaos runs, budgets, the upstream queue, the trace buffer) is cut
short, overwritten with garbage, or replaced by one of another schema version, and state
that names things the configuration no longer has is kept; each time the daemon starts,
serves, and reports what it set aside (a warning naming the file, a ``state_set_aside``
signal, ``/v1/status``), keeping the damaged file for inspection."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openai
import pytest

from tests.support.daemon import LOOPBACK_PORTS, DaemonProcess, merge
from tests.support.durability import Sender
from tests.support.receivers import free_port

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ROOT = Path(__file__).parents[2]
TOKEN = "tok"
SLO = {"name": "llm", "target": 0.99, "window": "30d", "sli": {"kind": "llm_success"}}
STATE_FILES = (
    "slo-buckets.json",
    "rollouts.json",
    "rollout-samples.json",
    "incidents.sqlite",
    "chaos.sqlite",
    "certification.sqlite",
    "ledger.sqlite",
    "queue.db",
    "replay.sqlite",
)
DAMAGES = ("truncated", "garbage", "other_schema")


def request(daemon: DaemonProcess, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    sent = urllib.request.Request(
        daemon.url("admin", path),
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(sent, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{method} {path}: {exc.code} {exc.read()[:300]!r}") from None


def config(provider_url: str, *, second_route: bool = True) -> dict[str, Any]:
    routes = [{"name": "openai", "prefix": "/openai", "upstream": provider_url, "api": "openai"}]
    if second_route:
        routes.append(
            {"name": "other", "prefix": "/other", "upstream": provider_url, "api": "openai"}
        )
    return {
        "admin": {"endpoint": "127.0.0.1:0", "token": TOKEN},
        "slos": [SLO],
        "proxy": {"endpoint": "127.0.0.1:0", "routes": routes},
        "exporters": {  # nobody listens: what is sent stays queued
            "otlp": {"endpoint": f"127.0.0.1:{free_port()}", "shutdown_timeout": "1s"}
        },
        "budgets": {
            "budgets": [{"name": "daily", "scope": "agent", "limit_usd": 100, "window": "day"}]
        },
        "chaos": {
            "enabled": True,
            "experiments": [
                {
                    "name": "drill",
                    "targets": {"routes": ["openai"], "agents": ["nobody"]},
                    "faults": [{"type": "error", "status": 503}],
                    "duration": "1h",
                }
            ],
        },
        "alerting": {
            "receivers": [
                {
                    "name": "gone-later",
                    "type": "webhook",
                    "url": f"http://127.0.0.1:{free_port()}/",
                    "min_severity": "info",
                }
            ]
        },  # fmt: skip
        "incidents": {"min_severity": "info"},
    }


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fakes" / "provider.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def saved_state(tmp_path_factory: pytest.TempPathFactory, provider: str) -> Path:
    """A ``state_dir`` holding every kind of saved state, left by a clean stop."""
    workdir = tmp_path_factory.mktemp("first-run")
    base = merge(LOOPBACK_PORTS, {"state_dir": str(workdir / "state"), "node": {"name": "n"}})
    daemon = DaemonProcess(workdir, merge(base, config(provider))).start()
    try:
        request(daemon, "POST", "/v1/rollouts", {
            "name": "posted", "route": "other", "baseline": "gpt-4o-mini",
            "candidate": "gpt-4o", "steps": [{"weight": 50, "duration": "1h"}],
        })  # fmt: skip
        request(daemon, "POST", "/v1/chaos/experiments/drill/start", {})
        request(daemon, "POST", "/v1/throttles",
                {"agent_id": "a1", "requests_per_minute": 1, "for": "1h"})  # fmt: skip
        client = openai.OpenAI(
            base_url=f"http://{daemon.addresses['proxy']}/other/v1", api_key="sk-x", max_retries=0
        )
        for index in range(6):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                extra_headers={"X-Agent-Task-Id": f"t{index}", "X-Agent-Id": "a2"},
            )  # fmt: skip
        sender = Sender(daemon.addresses["otlp_grpc"])
        assert sender.send(spans=20)
        sender.close()
        assert daemon.stop() == 0
    finally:
        daemon.kill() if daemon.alive() else None
    state = workdir / "state"
    missing = [name for name in STATE_FILES if not (state / name).exists()]
    assert not missing, f"the first run left no {missing}"
    return state


def damage(path: Path, how: str) -> None:
    if how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: max(1, len(data) // 3)])
    elif how == "garbage":
        path.write_bytes(b"\x00\xffnot what was saved\x13\x37" * 700)
    elif path.suffix == ".json":
        data = json.loads(path.read_text())
        if "format" in data:
            data["format"] = data["format"].rsplit("/", 1)[0] + "/v99"
        else:
            data["version"] = 99
        path.write_text(json.dumps(data))
    else:  # every table replaced by one of another shape (another release's schema)
        db = sqlite3.connect(path)
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            if table.startswith("sqlite_"):
                continue
            db.execute(f'DROP TABLE "{table}"')
            db.execute(f'CREATE TABLE "{table}" (other_release BLOB)')
        db.commit()
        db.close()


def copy_state(saved: Path, daemon: DaemonProcess) -> Path:
    state = daemon.workdir / "state"
    shutil.copytree(saved, state)
    (state / "lock").unlink(missing_ok=True)
    return state


def assert_serves(daemon: DaemonProcess) -> dict[str, Any]:
    status: dict[str, Any] = request(daemon, "GET", "/v1/status")
    assert status["ready"] is True
    for path in ("/v1/slos", "/v1/rollouts", "/v1/incidents", "/v1/throttles",
                 "/v1/chaos/experiments", "/v1/notifications/dead", "/v1/traces"):  # fmt: skip
        request(daemon, "GET", path)
    assert "Traceback" not in daemon.log()
    return status


def set_aside(daemon: DaemonProcess, status: dict[str, Any]) -> list[dict[str, Any]]:
    signals = request(daemon, "GET", "/v1/signals?type=state_set_aside")["signals"]
    assert {s["labels"]["store"] for s in signals} == {e["store"] for e in status["set_aside"]}
    found: list[dict[str, Any]] = status["set_aside"]
    return found


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("name", STATE_FILES)
def test_a_damaged_state_file_is_set_aside_and_the_daemon_starts(
    make_daemon: Callable[..., DaemonProcess], saved_state: Path, provider: str, name: str,
    how: str,
) -> None:  # fmt: skip
    daemon = make_daemon(config(provider))
    state = copy_state(saved_state, daemon)
    damage(state / name, how)
    daemon.start()
    status = assert_serves(daemon)
    reported = [e for e in set_aside(daemon, status) if e["store"] == name]
    assert reported, f"{name} ({how}) was not reported: {status['set_aside']}"
    assert name in daemon.log()
    for entry in reported:
        if entry["kept"]:
            assert Path(entry["kept"]).exists(), "the damaged file is kept for inspection"
    if how == "truncated":  # and it starts again from what it made of it
        assert daemon.stop() == 0
        daemon.start()
        assert_serves(daemon)


def test_state_naming_what_the_configuration_no_longer_has_is_set_aside(
    make_daemon: Callable[..., DaemonProcess], saved_state: Path, provider: str
) -> None:
    settings = config(provider, second_route=False)  # the posted rollout's route left
    del settings["chaos"]["experiments"]  # the running experiment left
    settings["slos"] = []  # the SLO whose windows are saved left
    settings["budgets"] = {}
    settings["alerting"] = {}  # the receiver with queued notifications left
    daemon = make_daemon(settings)
    copy_state(saved_state, daemon)
    daemon.start()
    status = assert_serves(daemon)
    reported = {(e["store"], e["what"]) for e in set_aside(daemon, status)}
    assert ("rollouts.json", "posted rollout posted") in reported
    assert ("slo-buckets.json", "windows of SLO llm") in reported
    assert "posted rollout posted" in daemon.log()
    kept = [e["kept"] for e in status["set_aside"] if e["store"] == "rollouts.json"]
    assert json.loads(Path(kept[0]).read_text())["route"] == "other", "kept to be looked at"
    gone = request(daemon, "GET", "/v1/notifications/dead")["dead_letters"]
    assert gone and {d["reason"] for d in gone} == {"receiver_gone"}
    # validate agrees with run
    checked = subprocess.run(
        [sys.executable, "-m", "agent_sre_daemon.cli", "validate", str(daemon.config_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    # the rollout is kept where it was set aside, and the daemon starts again without it
    assert daemon.stop() == 0
    daemon.start()
    status = assert_serves(daemon)
    assert request(daemon, "GET", "/v1/rollouts")["rollouts"] == []
