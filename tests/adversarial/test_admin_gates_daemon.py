"""Classes 1 and 2 of issue 18 against the real daemon: every admin route, listed as the
daemon builds them, is driven with bad numbers (bodies and query parameters) and hostile
bodies (100,000 deep, NaN literals, too long); none answers 500, every answer is strict
JSON, the routes that read the input answer 400 naming it, and the daemon keeps serving.
The instances the issue found are checked one by one."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.adversarial.admin import TOKEN, routes, send, strict_json

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.daemon import DaemonProcess

DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 30_000 + b"1" + b"}" * 30_000  # under the 256 KiB cap
BAD_LITERALS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "5e-324", "1" + "0" * 30,
                "1" * 400]  # fmt: skip
BAD_QUERY = ["nan", "NaN", "inf", "-inf", "1e300", "-1", "5e-324", "1" * 400, "0x10", "1_0"]
NUMBER_FIELDS = ("requests_per_minute", "for", "threshold", "weight", "duration", "min_samples",
                 "confidence", "max_relative_change", "shadow_budget_usd", "timing")  # fmt: skip


def config(provider_url: str, tmp: Path) -> dict[str, Any]:
    return {
        "state_dir": str(tmp / "state"),
        "admin": {"endpoint": "127.0.0.1:0", "token": TOKEN},
        "proxy": {
            "endpoint": "127.0.0.1:0",
            "correlation": {"hold": "0s"},
            "routes": [
                {"name": "openai", "prefix": "/openai", "upstream": provider_url, "api": "openai"}
            ],
        },
        "replay": {"enabled": True},
    }


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonProcess, list]]:
    """One daemon for the module (hypothesis drives it many times), and its routes."""
    import subprocess
    import sys

    from tests.integration.conftest import ROOT
    from tests.support.daemon import LOOPBACK_PORTS, DaemonProcess, merge

    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fakes" / "provider.py"), "--port", "0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    provider_url = proc.stdout.readline().strip()
    tmp = tmp_path_factory.mktemp("gates")
    cfg = merge(merge(LOOPBACK_PORTS, {"node": {"name": "test-node"}}), config(provider_url, tmp))
    daemon = DaemonProcess(tmp, cfg).start()
    listed = routes({**cfg, "state_dir": str(tmp / "probe-state")})
    try:
        yield daemon, listed
    finally:
        try:
            daemon.stop(timeout=15)
        except Exception:
            daemon.kill()
        proc.terminate()
        proc.wait(10)


def healthy(daemon: DaemonProcess) -> bool:
    with urllib.request.urlopen(daemon.url("metrics", "/healthz"), timeout=10) as response:
        return response.status == 200


def test_the_routes_are_all_listed(running: tuple[DaemonProcess, list]) -> None:
    _, listed = running
    posts = {path for method, path in listed if method == "POST"}
    assert {"/v1/rollouts", "/v1/throttles", "/v1/replay/sessions"} <= posts
    assert len(listed) > 30


# -- bodies ---------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["deep-array", "deep-object"])
def test_a_deep_body_is_a_400_on_every_route(
    running: tuple[DaemonProcess, list], body: bytes
) -> None:
    """Instance: a body nested 100,000 deep answered 500 (RecursionError)."""
    daemon, listed = running
    statuses = {}
    for method, path in listed:
        if method == "GET":
            continue
        status, answer = send(daemon, method, path, raw=body)
        strict_json(answer)
        statuses[(method, path)] = status
        assert status < 500, (method, path, answer[:300])
    for path in ("/v1/rollouts", "/v1/throttles", "/v1/replay/sessions"):
        status, answer = send(daemon, "POST", path, raw=body)
        assert status == 400, (path, answer[:200])
        error = strict_json(answer)["error"]
        assert error["type"] == "invalid_argument"
        assert "nested deeper than" in error["message"]
    assert healthy(daemon)


def test_bodies_that_are_not_json_objects(running: tuple[DaemonProcess, list]) -> None:
    daemon, listed = running
    for raw in (b"{not json", b"\xff\xfe\x00", b"[]", b"1" * 5000, b'"x"', b"null"):
        for path in ("/v1/rollouts", "/v1/throttles", "/v1/replay/sessions"):
            status, answer = send(daemon, "POST", path, raw=raw)
            assert status == 400, (path, raw[:20], answer[:200])
            assert strict_json(answer)["error"]["type"] == "invalid_argument"


def test_a_body_too_long_is_413(running: tuple[DaemonProcess, list]) -> None:
    daemon, _ = running
    status, answer = send(daemon, "POST", "/v1/throttles", raw=b" " * (2 * 1024 * 1024))
    assert status == 413
    assert strict_json(answer)["error"]["type"] == "too_large"
    assert healthy(daemon)


# -- numbers in bodies ------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(literal=st.sampled_from(BAD_LITERALS), field=st.sampled_from(NUMBER_FIELDS),
       route=st.integers(min_value=0, max_value=100))  # fmt: skip
def test_bad_numbers_in_any_body_are_refused(
    running: tuple[DaemonProcess, list], literal: str, field: str, route: int
) -> None:
    """A bad number anywhere in the body of any changing route: never a 500, and never a
    change the GETs would then show as non-JSON (``Infinity``)."""
    daemon, listed = running
    changing = [(m, p) for m, p in listed if m != "GET" and p != "/v1/reload"]
    method, path = changing[route % len(changing)]
    raw = f'{{"agent_id": "a1", "name": "n1", "trace_id": "{"0" * 32}", "{field}": {literal}}}'
    status, answer = send(daemon, method, path, raw=raw.encode())
    assert status < 500, (method, path, answer[:300])
    body = strict_json(answer)
    if path in ("/v1/rollouts", "/v1/throttles", "/v1/replay/sessions"):
        assert status == 400
        assert body["error"]["type"] == "invalid_argument"
    for get_method, get_path in listed:
        if get_method == "GET" and "{" not in get_path:
            status, answer = send(daemon, "GET", get_path)
            assert status < 500, (get_path, answer[:300])
            strict_json(answer)


HOSTILE_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from([*NUMBER_FIELDS, "agent_id", "name", "route", "trace_id", "steps",
                         "analysis", "checks", "reason", "by", "prefix"]) | st.text(max_size=4),
        inner, max_size=4),
    max_leaves=25,
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=HOSTILE_JSON.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=64),
       route=st.integers(min_value=0, max_value=100))  # fmt: skip
def test_any_body_on_any_route_is_never_a_500(
    running: tuple[DaemonProcess, list], body: bytes, route: int
) -> None:
    """Whatever JSON (or bytes) a client posts to whichever route: an answer in the admin
    API's shape, strict JSON, never a 500."""
    daemon, listed = running
    changing = [(m, p) for m, p in listed if m != "GET" and p != "/v1/reload"]
    method, path = changing[route % len(changing)]
    status, answer = send(daemon, method, path, raw=body)
    assert status < 500, (method, path, body[:100], answer[:300])
    strict_json(answer)


def rollout(threshold: Any) -> dict[str, Any]:
    return {
        "name": "gate",
        "route": "openai",
        "baseline": "gpt-4o",
        "candidate": "gpt-4.1",
        "steps": [{"weight": 50, "duration": "10m"}],
        "analysis": {"min_samples": 1, "checks": [{"metric": "success_ratio",
                                                   "threshold": threshold}]},
    }  # fmt: skip


@pytest.mark.parametrize("threshold", ["NaN", "Infinity", "-1", "5e-324", "1e300", "2"])
def test_a_rollout_gate_of_nan_is_400(running: tuple[DaemonProcess, list], threshold: str) -> None:
    """Instance: ``threshold: NaN`` answered 201 and promoted a candidate that failed."""
    daemon, _ = running
    raw = json.dumps(rollout(0.5)).replace("0.5", threshold).encode()
    status, answer = send(daemon, "POST", "/v1/rollouts", raw=raw)
    assert status == 400, answer[:300]
    message = strict_json(answer)["error"]["message"]
    assert "threshold" in message
    assert send(daemon, "GET", "/v1/rollouts/gate")[0] == 404


def test_a_throttle_of_400_digits_is_400(running: tuple[DaemonProcess, list]) -> None:
    """Instance: ``for:`` of 400 digits became until=inf and GET /v1/throttles emitted
    ``Infinity``; ``requests_per_minute: 5e-324`` answered 500 on the agent's next call."""
    daemon, _ = running
    for field, raw_value in (
        ("for", "1" * 400),
        ("for", '"' + "1" * 400 + 's"'),
        ("requests_per_minute", "5e-324"),
        ("requests_per_minute", "NaN"),
    ):
        raw = f'{{"agent_id": "hog", "{field}": {raw_value}}}'.encode()
        status, answer = send(daemon, "POST", "/v1/throttles", raw=raw)
        assert status == 400, (field, answer[:300])
        assert strict_json(answer)["error"]["message"].startswith(field)
    status, answer = send(daemon, "GET", "/v1/throttles")
    assert status == 200
    assert [t for t in strict_json(answer)["throttles"] if t["agent_id"] == "hog"] == []
    client = openai.OpenAI(base_url=daemon.url("proxy", "/openai/v1"), api_key="sk-x",
                           max_retries=0, default_headers={"X-Agent-Id": "hog"})  # fmt: skip
    reply = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices


# -- numbers in query parameters ---------------------------------------------------------


@pytest.mark.parametrize("value", BAD_QUERY)
def test_bad_query_numbers_are_400_on_every_route(
    running: tuple[DaemonProcess, list], value: str
) -> None:
    """Instance: ``GET /v1/traces?since=1e300|nan`` answered 500."""
    daemon, listed = running
    for method, path in listed:
        if method != "GET":
            continue
        for name in ("since", "until", "limit"):
            status, answer = send(daemon, "GET", f"{path}?{name}={value}")
            assert status < 500, (path, name, value, answer[:300])
            strict_json(answer)
    for path, name in (("/v1/traces", "since"), ("/v1/traces", "until"), ("/v1/traces", "limit"),
                       ("/v1/signals", "since"), ("/v1/signals", "limit"),
                       ("/v1/chaos/runs", "limit"), ("/v1/fleet/agents", "limit"),
                       ("/v1/fleet/agents", "offset")):  # fmt: skip
        status, answer = send(daemon, "GET", f"{path}?{name}={value}")
        assert status == 400, (path, name, value, answer[:300])
        error = strict_json(answer)["error"]
        assert error["type"] == "invalid_argument"
        assert error["message"].startswith(name)
    assert healthy(daemon)


def test_ordinary_queries_still_work(running: tuple[DaemonProcess, list]) -> None:
    daemon, _ = running
    for path in ("/v1/traces?since=0&until=1900000000&limit=5", "/v1/signals?since=1.5&limit=3",
                 "/v1/chaos/runs?limit=10", "/v1/fleet/agents?q=a&limit=5&offset=1"):  # fmt: skip
        status, answer = send(daemon, "GET", path)
        assert status == 200, (path, answer[:300])


# -- paths and methods no route serves ------------------------------------------------------


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    tail=st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="?#%/"),
        min_size=1,
        max_size=300,
    )
)
def test_a_path_no_route_serves_is_a_json_404(
    running: tuple[DaemonProcess, list], tail: str
) -> None:
    daemon, _ = running
    path = "/v1/no-such-thing/" + urllib.parse.quote(tail, safe="")
    status, data = send(daemon, "GET", path)
    assert status == 404, (path, data)
    error = strict_json(data)["error"]
    assert error["type"] == "route_not_found" and "/v1/no-such-thing/" in error["message"]
    assert len(error["message"]) < 300  # a long path is cut, not echoed whole
    assert healthy(daemon)


def test_a_method_a_route_does_not_take_is_a_json_405(running: tuple[DaemonProcess, list]) -> None:
    daemon, _ = running
    status, data = send(daemon, "DELETE", "/v1/status")
    assert status == 405, data
    error = strict_json(data)["error"]
    assert error["type"] == "method_not_allowed" and "/v1/status" in error["message"]
    status, data = send(daemon, "GET", "/v1/status")
    assert status == 200 and "config" in strict_json(data)
