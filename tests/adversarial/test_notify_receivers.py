"""Notifications against receivers that misbehave, in the running daemon next to a real
Alertmanager: a receiver that hangs delays nobody else; a redirect is not followed (the
PagerDuty routing key never reaches the host it points to); a 4xx is final, dead-lettered,
logged, signalled and counted, and the next notification to that receiver still goes; a
429 is retried after its Retry-After; the dead letter is listed by the API and the CLI and
outlives a restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.metrics import scrape
from tests.support.receivers import ALERTMANAGER, Alertmanager, Receiver

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.support.daemon import DaemonProcess

TOKEN = "tok"
ROUTING_KEY = "R0UT1NG-KEY-never-elsewhere"


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


def wait_for(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    if ALERTMANAGER is None:
        pytest.skip("prometheus-alertmanager is not installed (tests/setup-services.sh)")
    manager = Alertmanager(tmp_path / "alertmanager")
    yield manager
    manager.stop()


@pytest.fixture
def servers() -> Iterator[dict[str, Receiver]]:
    made = {name: Receiver() for name in ("hang", "refuse", "redirect", "elsewhere", "busy")}
    made["hang"].hold.clear()  # takes the request and never answers (until the test ends)
    made["refuse"].status = 400
    made["redirect"].status = 307
    made["redirect"].answers = [
        (307, {"Location": made["elsewhere"].url + "/v2/enqueue"}) for _ in range(20)
    ]
    made["busy"].answers = [(429, {"Retry-After": "1"})]
    yield made
    for server in made.values():
        server.stop()


def dead_letters(daemon: DaemonProcess) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = request(daemon, "GET", "/v1/notifications/dead")["dead_letters"]
    return found


def test_misbehaving_receivers_delay_nobody_and_end_in_the_dead_letter(
    make_daemon: Callable[..., DaemonProcess],
    alertmanager: Alertmanager,
    servers: dict[str, Receiver],
) -> None:
    every = {"min_severity": "info"}
    daemon = make_daemon(
        {
            "admin": {"endpoint": "127.0.0.1:0", "token": TOKEN},
            "incidents": {"min_severity": "info"},
            "alerting": {
                "retry": {"attempts": 2, "initial_interval": "50ms", "max_interval": "2s"},
                "receivers": [
                    {"name": "am", "type": "alertmanager", "url": alertmanager.url, **every},
                    {
                        "name": "hang",
                        "type": "webhook",
                        "url": servers["hang"].url,
                        "timeout": "10m",
                        **every,
                    },
                    {"name": "refuse", "type": "webhook", "url": servers["refuse"].url, **every},
                    {
                        "name": "pd",
                        "type": "pagerduty",
                        "url": servers["redirect"].url,
                        "routing_key": ROUTING_KEY,
                        **every,
                    },
                    {"name": "busy", "type": "slack", "url": servers["busy"].url, **every},
                ],
            },
        }  # fmt: skip
    ).start()

    # a throttle put on by hand is an (info) signal: it opens an incident, notified to all
    request(daemon, "POST", "/v1/throttles", {"agent_id": "a1", "requests_per_minute": 1,
                                              "for": "1h"})  # fmt: skip
    [incident] = wait_for(
        lambda: request(daemon, "GET", "/v1/incidents?state=open")["incidents"], "an incident"
    )

    def in_alertmanager() -> list[dict[str, Any]]:
        return [a for a in alertmanager.alerts() if a["labels"].get("incident") == incident["id"]]

    wait_for(in_alertmanager, "the alert in Alertmanager")
    wait_for(lambda: servers["hang"].requests, "the hanging receiver to be called")

    # the second notification (the resolution) reaches Alertmanager while the hanging
    # receiver still holds the first one
    request(daemon, "POST", f"/v1/incidents/{incident['id']}/resolve", {"by": "test"})
    wait_for(lambda: not in_alertmanager(), "the resolution in Alertmanager")
    assert not servers["hang"].hold.is_set()
    assert len(servers["hang"].requests) == 1

    # the redirect was not followed: the host it pointed to never saw the routing key
    wait_for(lambda: len(servers["redirect"].requests) >= 2, "both notifications to pd")
    # a 429 is tried again after its Retry-After and delivered
    wait_for(lambda: len(servers["busy"].requests) >= 3, "the busy receiver's deliveries")

    def of_incident(letters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # the dead letters' own signals open an incident of their own, notified too
        return [d for d in letters if incident["id"] in json.dumps(d["body"])]

    letters = wait_for(lambda: len(of_incident(dead_letters(daemon))) >= 4
                       and of_incident(dead_letters(daemon)), "four dead letters")  # fmt: skip
    assert sorted((d["receiver"], d["reason"]) for d in letters) == [
        ("pd", "redirect"), ("pd", "redirect"), ("refuse", "refused"), ("refuse", "refused")
    ]  # fmt: skip
    assert servers["elsewhere"].requests == []
    redirected = [b for _, _, b in servers["redirect"].requests if incident["id"].encode() in b]
    assert len(redirected) == 2, "a redirect is final, not retried"
    refused = [json.loads(b) for _, _, b in servers["refuse"].requests]
    refused = [b for b in refused if b["incident"]["id"] == incident["id"]]
    assert [b["event"] for b in refused] == ["opened", "resolved"], (
        "a 400 is final (not retried) and holds nothing back"
    )
    for letter in letters:
        assert letter["attempts"] == 1
        assert "HTTP 4" in letter["error"] or "HTTP 307" in letter["error"]
        assert letter["body"], "the payload is kept to be looked at"
    pd = next(d for d in letters if d["receiver"] == "pd")
    assert ROUTING_KEY not in json.dumps(pd), "the routing key is never stored"
    assert ROUTING_KEY not in daemon.log()

    # surfaced: a log line, a signal and metrics
    assert "notification to refuse refused" in daemon.log()
    signals = request(daemon, "GET", "/v1/signals?type=notification_dead_lettered")["signals"]
    assert {(s["labels"]["receiver"], s["labels"]["reason"]) for s in signals} == {
        ("pd", "redirect"), ("refuse", "refused")
    }  # fmt: skip
    metrics = scrape(daemon.url("metrics", "/metrics"))
    dead = "agent_sre_notifications_dead_lettered_total"
    assert metrics[(dead, (("reason", "refused"), ("receiver", "refuse")))] >= 2
    assert metrics[(dead, (("reason", "redirect"), ("receiver", "pd")))] >= 2
    held = len(dead_letters(daemon))
    assert metrics[("agent_sre_notifications_dead_letters", ())] == held
    busy = [b for _, _, b in servers["busy"].requests if incident["id"].encode() in b]
    assert len(busy) == 3, "429 (Retry-After: 1), then the opened and the resolved delivered"
    assert metrics[("agent_sre_notifications_sent_total", (("receiver", "busy"),))] >= 2

    # the CLI lists them; they outlive a restart
    env = {**os.environ, "AGENT_SRE_ADMIN_TOKEN": TOKEN}
    listed = subprocess.run(
        [sys.executable, "-m", "agent_sre_daemon.cli", "incidents", "dead-letters", "--json",
         "--admin", daemon.addresses["admin"]],
        capture_output=True, text=True, env=env, timeout=30, check=False,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)["dead_letters"]) == held
    table = subprocess.run(
        [sys.executable, "-m", "agent_sre_daemon.cli", "incidents", "dead-letters",
         "--admin", daemon.addresses["admin"]],
        capture_output=True, text=True, env=env, timeout=30, check=False,
    )  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "redirect" in table.stdout and "refused" in table.stdout
    servers["hang"].hold.set()
    assert daemon.stop() == 0
    daemon.start()
    assert len(dead_letters(daemon)) >= held
    metrics = scrape(daemon.url("metrics", "/metrics"))
    assert metrics[("agent_sre_notifications_dead_letters", ())] == len(dead_letters(daemon))
