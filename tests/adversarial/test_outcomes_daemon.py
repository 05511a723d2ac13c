"""Outcomes nobody upstream gave, against the real daemon and a stand-in provider.

A call's answer may come from the upstream, a refusal, a chaos fault, a replayed recording
or (never to the client) a shadow copy. Whatever judges an upstream's health reads only the
upstream's answers: one agent's faults or replays never open a circuit other agents use; a
fault whose client left is neither forwarded nor billed and keeps its chaos attributes; a
replayed call never sends a shadow copy to a provider."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.integration.conftest import forwarding
from tests.support.metrics import scrape
from tests.support.stand_in import ThreadedProvider
from tests.support.upstream import attrs

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.fakes.provider import FakeProvider
    from tests.support.daemon import DaemonProcess
    from tests.support.upstream import RecordingUpstream

TOKEN = "tok"
BREAKER = {"name": "upstreams", "per": "route", "error_ratio": 0.5, "min_calls": 4,
           "window": "60s", "open_for": "60s"}  # fmt: skip
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
REPLAY_HEADER = "X-Agent-SRE-Replay"


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with ThreadedProvider() as fake:
        yield fake


@pytest.fixture
def candidate() -> Iterator[FakeProvider]:
    with ThreadedProvider() as fake:
        yield fake


def route(provider: FakeProvider) -> dict[str, Any]:
    return {"name": "openai", "prefix": "/openai", "upstream": provider.url, "api": "openai"}


def chat(
    daemon: DaemonProcess, agent: str, headers: dict[str, str] | None = None, timeout: float = 10
) -> httpx.Response:
    return httpx.post(
        f"http://{daemon.addresses['proxy']}/openai/v1/chat/completions",
        json=CHAT,
        headers={"X-Agent-Id": agent, "Authorization": "Bearer sk-test", **(headers or {})},
        timeout=timeout,
    )


def session_key(session: dict[str, Any]) -> str:
    """The header value that binds a call to a replay session: its secret key, not its id."""
    return str(session["header"].split(": ", 1)[1])


def admin(daemon: DaemonProcess, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        daemon.url("admin", path),
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def circuits(daemon: DaemonProcess) -> dict[str, str]:
    rows = admin(daemon, "GET", "/v1/circuits")["circuits"]
    return {row["target"]: row["state"] for row in rows}


def wait_for(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def proxy_spans(upstream: RecordingUpstream) -> list[dict[str, Any]]:
    return [
        attrs(span.attributes)
        for _, span in upstream.spans()
        if any(kv.key == "agent_sre.proxy.route" for kv in span.attributes)
    ]


def test_chaos_faults_aimed_at_one_agent_never_open_the_route_for_the_others(
    make_daemon, provider: FakeProvider, upstream: RecordingUpstream
) -> None:
    experiment = {
        "name": "break-a",
        "targets": {"agents": ["agent-a"]},
        "faults": [{"type": "error", "status": 500}],
        "duration": "10m",
    }
    daemon = make_daemon(
        {
            "proxy": {"routes": [route(provider)], "correlation": {"hold": "0s"}},
            "admin": {"token": TOKEN},
            "chaos": {"enabled": True, "allow_header_faults": True, "experiments": [experiment]},
            "incidents": {"circuit_breakers": [BREAKER]},
            **forwarding(upstream),
        }
    ).start()
    # faults asked per call by agent a's own header...
    for _ in range(3):
        answer = chat(daemon, "agent-a", {"x-agent-sre-fault": "error; status=500"})
        assert answer.status_code == 500 and answer.headers["x-agent-sre-chaos"] == "error"
    # ...and by an experiment aimed at agent a alone
    admin(daemon, "POST", "/v1/chaos/experiments/break-a/start", {})
    for _ in range(3):
        assert chat(daemon, "agent-a").status_code == 500
    assert provider.calls == 0  # none of those reached the upstream
    # the upstream is fine: agent b's calls reach it, its circuit never opened
    answer = chat(daemon, "agent-b")
    assert answer.status_code == 200, answer.text
    assert provider.calls == 1
    assert circuits(daemon).get("route:openai", "closed") == "closed"
    # every span says who decided its answer
    assert wait_for(lambda: len(proxy_spans(upstream)) >= 7, "the calls' spans")
    decided = sorted(span.get("agent_sre.decided_by", "?") for span in proxy_spans(upstream))
    assert decided == ["chaos"] * 6 + ["upstream"]


def test_replayed_500s_never_open_the_route_for_the_others(
    make_daemon, provider: FakeProvider, upstream: RecordingUpstream
) -> None:
    config: dict[str, Any] = {
        "proxy": {"routes": [route(provider)], "correlation": {"hold": "0s"}},
        "admin": {"token": TOKEN},
        "replay": {"enabled": True},
    }
    daemon = make_daemon(config).start()
    # a run whose four calls the upstream failed, recorded (no breaker yet)
    trace_id = "5b8aa5a2d2c872e8321cf37308d69df2"
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-01"
    provider.status = 500
    for _ in range(4):
        assert chat(daemon, "agent-a", {"traceparent": traceparent}).status_code == 500
    provider.status = 200

    def recorded() -> bool:
        try:
            listed = admin(daemon, "GET", "/v1/traces?limit=10")["traces"]
        except urllib.error.HTTPError:
            return False
        return any(t["trace_id"] == trace_id and t["calls_captured"] == 4 for t in listed)

    wait_for(recorded, "the failed run to be captured")
    # now a breaker on the route; agent a replays the failed run, twice over
    config["incidents"] = {"circuit_breakers": [BREAKER]}
    daemon.write_config(config)
    admin(daemon, "POST", "/v1/reload", {})
    reached = provider.calls
    for _ in range(2):
        session = admin(daemon, "POST", "/v1/replay/sessions", {"trace_id": trace_id})
        for _ in range(4):
            answer = chat(daemon, "agent-a", {REPLAY_HEADER: session_key(session)})
            assert answer.status_code == 500  # the recorded answer
    assert provider.calls == reached  # replayed: nothing reached the upstream
    # agent b's call goes to the (healthy) upstream
    answer = chat(daemon, "agent-b")
    assert answer.status_code == 200, answer.text
    assert circuits(daemon).get("route:openai", "closed") == "closed"


@pytest.mark.parametrize("fault", ["timeout; hold=5s", "latency; delay=5s"])
def test_a_held_call_whose_client_left_is_not_forwarded_nor_billed(
    make_daemon, provider: FakeProvider, upstream: RecordingUpstream, fault: str
) -> None:
    daemon = make_daemon(
        {
            "proxy": {"routes": [route(provider)], "correlation": {"hold": "0s"}},
            "admin": {"token": TOKEN},
            "chaos": {"enabled": True, "allow_header_faults": True},
            **forwarding(upstream),
        }
    ).start()
    with pytest.raises(httpx.TimeoutException):
        chat(daemon, "hangs-up", {"x-agent-sre-fault": fault}, timeout=0.5)
    assert wait_for(lambda: proxy_spans(upstream), "the call's span", timeout=15)
    [span] = proxy_spans(upstream)
    kind = fault.partition(";")[0]
    assert span["agent_sre.chaos.fault"] == kind
    assert span["error.type"] in (f"chaos_{kind}", "client_disconnected")
    assert span["agent_sre.decided_by"] == "chaos"
    assert "agent_sre.cost_usd" not in span
    time.sleep(0.5)
    assert provider.calls == 0  # never forwarded
    metrics = scrape(daemon.url("metrics", "/metrics"))
    billed = [
        value
        for (name, labels), value in metrics.items()
        if name == "agent_sre_llm_cost_usd_total" and ("agent", "hangs-up") in labels
    ]
    assert sum(billed) == 0


def test_a_replayed_call_sends_no_shadow_copy_to_any_provider(
    make_daemon, provider: FakeProvider, candidate: FakeProvider
) -> None:
    rollout = {
        "name": "shadowed",
        "route": "openai",
        "vary": "upstream",
        "candidate": candidate.url,
        "mode": "shadow",
        "steps": [{"weight": 100, "duration": "1h"}],
        "shadow_budget_usd": 10.0,
    }
    config: dict[str, Any] = {
        "proxy": {"routes": [route(provider)], "correlation": {"hold": "0s"}},
        "admin": {"token": TOKEN},
        "replay": {"enabled": True},
    }
    daemon = make_daemon(config).start()
    trace_id = "6c8aa5a2d2c872e8321cf37308d69df3"
    assert chat(daemon, "agent-a", {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}).is_success

    def recorded() -> bool:
        listed = admin(daemon, "GET", "/v1/traces?limit=10")["traces"]
        return any(t["trace_id"] == trace_id and t["calls_captured"] == 1 for t in listed)

    wait_for(recorded, "the run to be captured")
    config["rollouts"] = {"rollouts": [rollout]}
    daemon.write_config(config)
    admin(daemon, "POST", "/v1/reload", {})
    # a live call is mirrored (the rollout works)...
    assert chat(daemon, "agent-b").is_success
    wait_for(lambda: candidate.calls == 1, "the live call's shadow copy")
    # ...a replayed one is not, and the replay header never reaches anyone
    session = admin(daemon, "POST", "/v1/replay/sessions", {"trace_id": trace_id})
    assert chat(daemon, "agent-a", {REPLAY_HEADER: session_key(session)}).is_success
    assert chat(daemon, "agent-c").is_success
    wait_for(lambda: candidate.calls == 2, "the second live call's shadow copy")
    time.sleep(0.3)
    assert candidate.calls == 2
    for seen in (*provider.requests, *candidate.requests):
        assert REPLAY_HEADER not in seen.headers
