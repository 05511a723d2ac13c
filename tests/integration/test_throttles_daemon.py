"""Throttles and blocks in the running daemon, seen and changed by hand: ``/v1/throttles``
and ``agent-sre throttles`` list the throttles in force (put on by a rule of an incident or
by an operator), put one on (the agent's proxied calls are paced: 429 ``agent_throttled``)
and lift it (the calls pass again); every change is published and logged with who did it;
bad requests are refused naming the field, changes without the token with 401, a lift of
nothing with 404; ``agent-sre agents blocked`` lists the kill switch's blocks, fleet-wide
with the Redis ledger."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openai
import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.support.daemon import DaemonProcess

TOKEN = "tok"


def proxy_config(provider_url: str) -> dict[str, Any]:
    return {
        "admin": {"endpoint": "127.0.0.1:0", "token": TOKEN},
        "proxy": {
            "endpoint": "127.0.0.1:0",
            "routes": [
                {"name": "openai", "prefix": "/openai", "upstream": provider_url, "api": "openai"}
            ],
        },
    }


def request(
    daemon: DaemonProcess,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = TOKEN,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    """``(status, decoded JSON)`` of one admin API request."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    sent = urllib.request.Request(
        daemon.url("admin", path), data=data, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(sent, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def cli(daemon: DaemonProcess, *args: str, token: str = TOKEN) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AGENT_SRE_ADMIN_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "agent_sre_daemon.cli", *args, "--admin", daemon.addresses["admin"]],
        capture_output=True, text=True, env=env, timeout=30, check=False,
    )  # fmt: skip


def calls(daemon: DaemonProcess, agent: str, count: int = 2) -> list[str]:
    """``count`` calls as ``agent`` through the proxy: ``ok`` or the refusal's type."""
    client = openai.OpenAI(
        base_url=f"http://{daemon.addresses['proxy']}/openai/v1",
        api_key="sk-x",
        max_retries=0,
        default_headers={"X-Agent-Id": agent},
    )
    out = []
    for _ in range(count):
        try:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            out.append("ok")
        except openai.APIStatusError as refused:
            headers = refused.response.headers
            if refused.status_code == 429:
                assert int(headers["retry-after"]) > 0
            out.append(f"{refused.status_code} {headers['x-agent-sre-error']}")
    return out


def throttle_signals(daemon: DaemonProcess) -> list[dict[str, Any]]:
    status, data = request(daemon, "GET", "/v1/signals?type=agent_throttle", token=None)
    assert status == 200
    return [s for s in data["signals"] if s["source"] == "incidents"]


def wait_for(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_an_operator_puts_lists_and_lifts_a_throttle(
    make_daemon: Callable[..., DaemonProcess], provider_url: str
) -> None:
    daemon = make_daemon(proxy_config(provider_url)).start()
    listed = cli(daemon, "throttles", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == {"throttles": []}
    assert calls(daemon, "runaway") == ["ok", "ok"]

    # put: one call, then one each two minutes
    put = cli(daemon, "throttles", "put", "runaway", "--rpm", "0.5", "--for", "10m", "--by=alice")
    assert put.returncode == 0, put.stderr
    assert put.stdout.strip() == "agent runaway throttled"
    assert calls(daemon, "runaway") == ["ok", "429 agent_throttled"]
    assert calls(daemon, "calm") == ["ok", "ok"]

    listed = cli(daemon, "throttles", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)["throttles"]
    assert row["agent_id"] == "runaway"
    assert row["requests_per_minute"] == 0.5
    assert row["until"] - row["since"] == 600
    assert 0 < row["left_seconds"] <= 600
    assert (row["by"], row["operator"], row["rule"], row["incident"]) == (
        "operator alice", "alice", "", ""
    )  # fmt: skip
    table = cli(daemon, "throttles")
    assert table.returncode == 0, table.stderr
    assert "runaway" in table.stdout and "operator alice" in table.stdout

    # published and logged with who did it
    [signal] = throttle_signals(daemon)
    assert (signal["state"], signal["severity"], signal["labels"]) == (
        "firing", "info", {"agent_id": "runaway"}
    )  # fmt: skip
    assert signal["details"]["operator"] == "alice" and signal["details"]["saved"] is True
    assert "agent runaway throttled to 0.5 requests a minute for 600s by operator alice" in (
        daemon.log()
    )

    # a restart keeps it, and who put it on
    assert daemon.stop() == 0
    daemon.start()
    assert calls(daemon, "runaway", 1) == ["429 agent_throttled"]
    status, data = request(daemon, "GET", "/v1/throttles", token=None)
    assert status == 200
    assert [(t["agent_id"], t["by"]) for t in data["throttles"]] == [("runaway", "operator alice")]

    # lift: the calls pass again
    lifted = cli(daemon, "throttles", "lift", "runaway", "--by", "bob", "--json")
    assert lifted.returncode == 0, lifted.stderr
    answer = json.loads(lifted.stdout)
    assert (answer["agent_id"], answer["state"], answer["saved"]) == ("runaway", "lifted", True)
    assert calls(daemon, "runaway") == ["ok", "ok"]
    assert json.loads(cli(daemon, "throttles", "--json").stdout) == {"throttles": []}
    assert [s["state"] for s in throttle_signals(daemon)] == ["resolved"]  # after the restart
    assert "throttle of agent runaway lifted by operator bob" in daemon.log()

    # and it stays lifted across a restart
    assert daemon.stop() == 0
    daemon.start()
    assert calls(daemon, "runaway") == ["ok", "ok"]


def test_bad_throttle_requests_are_refused_saying_why(
    make_daemon: Callable[..., DaemonProcess], provider_url: str
) -> None:
    daemon = make_daemon(proxy_config(provider_url)).start()

    def refused(body: Any = None, raw: bytes | None = None) -> tuple[int, str, str]:
        status, data = request(daemon, "POST", "/v1/throttles", body, raw=raw)
        return status, data["error"]["type"], data["error"]["message"]

    assert refused({"requests_per_minute": 1}) == (
        400, "invalid_argument", "agent_id: required: the agent's id, a non-empty string"
    )  # fmt: skip
    assert refused({"agent_id": "a", "requests_per_minute": 0}) == (
        400, "invalid_argument", "requests_per_minute: must be a number above 0, not 0"
    )  # fmt: skip
    assert refused({"agent_id": "a", "requests_per_minute": "fast"})[2].startswith(
        "requests_per_minute: must be a number above 0"
    )
    assert refused({"agent_id": "a", "for": "soon"})[2].startswith("for: 'soon' is not a duration")
    assert refused({"agent_id": "a", "for": 0}) == (
        400, "invalid_argument", "for: must be longer than 0"
    )  # fmt: skip
    assert refused({"agent_id": "a", "rpm": 2})[2].startswith("rpm: unknown field")
    assert refused(["a"])[2] == "body: must be a JSON object"
    assert refused(raw=b"{not json")[2].startswith("body: not JSON (")
    # nothing was put on
    assert request(daemon, "GET", "/v1/throttles")[1] == {"throttles": []}
    assert calls(daemon, "a") == ["ok", "ok"]

    # the CLI refuses what it can tell is wrong itself: bad usage
    for args in (["--rpm", "0"], ["--rpm", "x"], ["--for", "soon"], ["--for", "0"]):
        bad = cli(daemon, "throttles", "put", "a", *args)
        assert bad.returncode == 2, (args, bad.stderr)
        assert "--rpm" in bad.stderr or "--for" in bad.stderr

    # lifting nothing: 404 in the admin API's error shape, exit 1 from the CLI
    assert request(daemon, "DELETE", "/v1/throttles/nobody") == (
        404, {"error": {"type": "throttle_not_found", "message": "agent 'nobody' is not throttled"}}
    )  # fmt: skip
    missing = cli(daemon, "throttles", "lift", "nobody")
    assert missing.returncode == 1
    assert "agent 'nobody' is not throttled" in missing.stderr
    assert throttle_signals(daemon) == []  # nothing changed, nothing published


def test_changes_need_the_admin_token(
    make_daemon: Callable[..., DaemonProcess], provider_url: str
) -> None:
    daemon = make_daemon(proxy_config(provider_url)).start()
    body = {"agent_id": "a", "requests_per_minute": 1, "for": "1h"}
    for token in (None, "wrong"):
        for method, path, sent in (
            ("POST", "/v1/throttles", body),
            ("DELETE", "/v1/throttles/a", None),
        ):
            status, data = request(daemon, method, path, sent, token=token)
            assert (status, data["error"]["type"]) == (401, "unauthorized"), (method, token)
    no_token = cli(daemon, "throttles", "put", "a", token="")
    assert no_token.returncode == 1
    assert "AGENT_SRE_ADMIN_TOKEN" in no_token.stderr
    assert request(daemon, "GET", "/v1/throttles", token=None) == (200, {"throttles": []})
    assert calls(daemon, "a") == ["ok", "ok"]

    # with the token it goes through; lifting it twice: the second is a 404
    assert request(daemon, "POST", "/v1/throttles", body)[0] == 200
    assert request(daemon, "DELETE", "/v1/throttles/a")[0] == 200
    assert request(daemon, "DELETE", "/v1/throttles/a")[0] == 404


def test_a_rules_throttle_names_the_rule_and_incident_and_an_operator_lifts_it(
    make_daemon: Callable[..., DaemonProcess], provider_url: str
) -> None:
    """A kill switch refusal opens an incident whose rule throttles the agent; once the
    operator unblocks it, the throttle (and who put it on) is visible and can be lifted."""
    config = proxy_config(provider_url)
    config["incidents"] = {
        "rules": [
            {
                "name": "let-back-slowly",
                "match": {"types": ["budget_refused"], "labels": {"budget": "kill_switch"}},
                "when": ["opened"],
                "actions": [
                    {
                        "action": "throttle_agent",
                        "params": {
                            "agent_id": "{agent_id}",
                            "requests_per_minute": "0.5",
                            "for": "1h",
                        },
                    }
                ],
            }
        ]
    }
    daemon = make_daemon(config).start()
    blocked = cli(daemon, "agents", "block", "runaway", "--reason", "looping")
    assert blocked.returncode == 0, blocked.stderr
    assert calls(daemon, "runaway", 1) == ["403 agent_blocked"]

    def throttles() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = request(daemon, "GET", "/v1/throttles")[1]["throttles"]
        return rows

    [row] = wait_for(throttles, "the rule's throttle")
    incident = request(daemon, "GET", "/v1/incidents?state=open")[1]["incidents"][0]["id"]
    assert (row["agent_id"], row["rule"], row["incident"], row["operator"]) == (
        "runaway", "let-back-slowly", incident, ""
    )  # fmt: skip
    assert row["by"] == f"rule let-back-slowly (incident {incident})"
    [signal] = throttle_signals(daemon)
    assert signal["details"]["rule"] == "let-back-slowly"
    assert f"by rule let-back-slowly (incident {incident})" in daemon.log()

    assert cli(daemon, "agents", "unblock", "runaway").returncode == 0
    assert calls(daemon, "runaway") == ["ok", "429 agent_throttled"]
    lifted = cli(daemon, "throttles", "lift", "runaway", "--by", "carol")
    assert lifted.returncode == 0, lifted.stderr
    assert calls(daemon, "runaway") == ["ok", "ok"]
    assert "throttle of agent runaway lifted by operator carol" in daemon.log()


def test_a_throttle_that_cannot_be_saved_holds_until_a_restart_and_says_so(
    make_daemon: Callable[..., DaemonProcess], provider_url: str
) -> None:
    daemon = make_daemon(proxy_config(provider_url)).start()
    database = Path(daemon.config["state_dir"]) / "incidents.sqlite"
    # the file refuses writes to the throttles (as a full or read-only disk would)
    with sqlite3.connect(database) as other:
        other.execute(
            "CREATE TRIGGER refuse_insert BEFORE INSERT ON throttles "
            "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
        )
    status, answer = request(
        daemon, "POST", "/v1/throttles", {"agent_id": "a1", "requests_per_minute": 0.5}
    )
    assert (status, answer["saved"]) == (200, False)
    assert answer["message"].startswith("agent a1 throttled, not saved (a restart lifts it)")
    assert "disk I/O error" in answer["message"]
    assert "throttle of agent a1 not saved (a restart lifts it)" in daemon.log()
    assert throttle_signals(daemon)[0]["details"]["saved"] is False
    assert calls(daemon, "a1") == ["ok", "429 agent_throttled"]  # it holds all the same
    assert daemon.stop() == 0
    daemon.start()
    assert calls(daemon, "a1") == ["ok", "ok"]  # the restart lifted it, as it said


def test_agents_blocked_lists_the_kill_switch(
    make_daemon: Callable[..., DaemonProcess], provider_url: str
) -> None:
    daemon = make_daemon(proxy_config(provider_url)).start()
    assert calls(daemon, "calm", 1) == ["ok"]
    listed = cli(daemon, "agents", "blocked", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == {"store": "sqlite", "blocked": []}
    assert cli(daemon, "agents", "block", "runaway", "--reason", "looping").returncode == 0
    listed = cli(daemon, "agents", "blocked", "--json")
    assert json.loads(listed.stdout)["blocked"] == [{"agent_id": "runaway", "reason": "looping"}]
    table = cli(daemon, "agents", "blocked").stdout
    assert "runaway" in table and "looping" in table and "calm" not in table
    everyone = cli(daemon, "agents").stdout
    assert "runaway" in everyone and "yes: looping" in everyone and "calm" in everyone
    assert "agent runaway blocked by an operator" in daemon.log()
    assert cli(daemon, "agents", "unblock", "runaway").returncode == 0
    assert json.loads(cli(daemon, "agents", "blocked", "--json").stdout)["blocked"] == []
    assert "agent runaway unblocked by an operator" in daemon.log()
    unreachable = subprocess.run(
        [sys.executable, "-m", "agent_sre_daemon.cli", "agents", "blocked", "--admin",
         "127.0.0.1:1"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert unreachable.returncode == 1
    assert "cannot reach the admin API at 127.0.0.1:1" in unreachable.stderr


def test_blocks_set_through_one_daemon_are_listed_by_another_sharing_redis(
    make_daemon: Callable[..., DaemonProcess], provider_url: str, tmp_path: Path
) -> None:
    from tests.proxy.test_redis_ledger import REDIS, RedisProcess

    if REDIS is None:
        pytest.skip("redis-server is not installed (tests/setup-services.sh installs it)")
    server = RedisProcess(tmp_path)
    server.start()
    try:
        shared = {"budgets": {"store": "redis", "redis_url": server.url}}
        one = make_daemon({**proxy_config(provider_url), **shared}).start()
        two = make_daemon({**proxy_config(provider_url), **shared}).start()
        assert cli(one, "agents", "block", "runaway", "--reason", "fleet").returncode == 0
        # read from the shared store at once, not at the next refresh
        listed = json.loads(cli(two, "agents", "blocked", "--json").stdout)
        assert listed == {"store": "redis", "blocked": [{"agent_id": "runaway", "reason": "fleet"}]}
        assert calls(two, "runaway", 1) == ["403 agent_blocked"]
        assert cli(two, "agents", "unblock", "runaway").returncode == 0
        assert json.loads(cli(one, "agents", "blocked", "--json").stdout)["blocked"] == []
        one.stop()
        two.stop()
    finally:
        server.stop()
