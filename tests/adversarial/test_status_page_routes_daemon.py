"""The status page's routes and the admin routes it added, against a real daemon, as a
careless or hostile client would call them: bad paging numbers and searches, unknown names,
paths that try to leave the page's files, bodies and methods the page does not take, reads
from beyond loopback. Never a 500, the API's answers stay strict JSON, the page's answers
always carry their security headers, and only the page's files are open without the token.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from typing import TYPE_CHECKING, Any

import openai
import pytest

from agent_sre_daemon.admin.access import is_public
from tests.adversarial.admin import TOKEN, all_routes, page_routes, routes, send, strict_json
from tests.support.stand_in import ThreadedProvider

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.daemon import DaemonProcess

BAD_NUMBERS = ["0", "-1", "nan", "inf", "1e300", "1.5", "abc", "1001", "0x10", "1" * 400]
HOSTILE_ASSETS = ["..%2f..%2fetc%2fpasswd", "..%2fstatuspage%2f__init__.py", "app.js%00",
                  "APP.JS", "%2e%2e", "index.html", "app.js.map", "a" * 2000]  # fmt: skip


def config(provider_url: str, tmp: Path) -> dict[str, Any]:
    return {
        "state_dir": str(tmp / "state"),
        "node": {"name": "adv-node"},
        "admin": {"endpoint": "127.0.0.1:0", "token": TOKEN},
        "proxy": {
            "endpoint": "127.0.0.1:0",
            "correlation": {"hold": "0s"},
            "routes": [
                {"name": "openai", "prefix": "/openai", "upstream": provider_url, "api": "openai"}
            ],
        },
        "slos": [{"name": "llm", "target": 0.99, "sli": {"kind": "llm_success"}}],
        "budgets": {
            "budgets": [{"name": "daily", "scope": "agent", "limit_usd": 1.0, "window": "day"}]
        },
    }


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    from tests.support.daemon import LOOPBACK_PORTS, DaemonProcess, merge

    with ThreadedProvider() as fake:
        tmp = tmp_path_factory.mktemp("page-routes")
        daemon = DaemonProcess(tmp, merge(LOOPBACK_PORTS, config(fake.url, tmp))).start()
        try:
            for agent in ("a-1", "a-2", "b-1", "<b>bold</b>"):
                openai.OpenAI(
                    base_url=daemon.url("proxy", "/openai/v1"), api_key="sk", max_retries=0,
                    default_headers={"X-Agent-Id": agent},
                ).chat.completions.create(model="gpt-4o-mini",
                                          messages=[{"role": "user", "content": "hi"}])  # fmt: skip
            yield daemon
        finally:
            try:
                daemon.stop(timeout=15)
            except Exception:
                daemon.kill()


def raw(
    daemon: DaemonProcess,
    method: str,
    path: str,
    host: str | None = None,
    body: bytes | None = None,
    token: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request with the path sent as is (no client normalisation) and a chosen Host."""
    address, port = daemon.addresses["admin"].rsplit(":", 1)
    conn = http.client.HTTPConnection(address, int(port), timeout=10)
    headers = {"Host": host or daemon.addresses["admin"]}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def test_every_route_is_the_api_or_the_page_and_only_the_page_is_public(
    running: DaemonProcess,
) -> None:
    cfg = {**config("http://127.0.0.1:9", running.workdir), "state_dir": str(running.workdir)}
    listed = all_routes(cfg)
    assert set(listed) == set(routes(cfg)) | set(page_routes(cfg))
    assert set(page_routes(cfg)) == {("GET", "/"), ("GET", "/ui/x")}
    assert ("GET", "/v1/budgets/x") in routes(cfg)
    assert ("GET", "/v1/slos/x/burndown") in routes(cfg)
    # the mark that opens a route to any client is on the page's handlers only
    from agent_sre.config import Config
    from agent_sre_daemon.admin.server import AdminServer
    from agent_sre_daemon.node import Node

    node = Node(Config.model_validate(cfg), environ={})
    admin = next(c for c in node.components if isinstance(c, AdminServer))

    class _Match:
        def __init__(self, route: Any) -> None:
            self.match_info = type("M", (), {"route": route})()

    public = {
        (route.method, resource.canonical)
        for resource in admin.app().router.resources()
        for route in resource
        if is_public(_Match(route))  # type: ignore[arg-type]
    }
    assert public == {("GET", "/"), ("HEAD", "/"), ("GET", "/ui/{name}"), ("HEAD", "/ui/{name}")}


# -- the page's routes ------------------------------------------------------------------------


def test_the_page_answers_any_query_with_itself_and_its_headers(running: DaemonProcess) -> None:
    for query in ("", "?since=nan", "?limit=1e300", "?q=%3Cscript%3E", "?" + "a=1&" * 500):
        for path in ("/", "/ui/app.js", "/ui/app.css", "/ui/charts.js", "/ui/favicon.svg"):
            status, headers, body = raw(running, "GET", path + query)
            assert status == 200, (path, query)
            csp = headers["content-security-policy"]
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
            assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
            assert headers["x-frame-options"] == "DENY"
            assert headers["x-content-type-options"] == "nosniff"
            assert body
    _, headers, _ = raw(running, "GET", "/ui/app.js")
    assert headers["content-type"].startswith("application/javascript")
    _, headers, body = raw(running, "GET", "/")
    assert headers["content-type"].startswith("text/html") and b"<script" in body
    # no inline script or style the policy would have to allow
    assert b"<script>" not in body and b"style=" not in body and b"<style" not in body


@pytest.mark.parametrize("name", HOSTILE_ASSETS)
def test_a_path_that_is_not_one_of_the_files_is_a_404(running: DaemonProcess, name: str) -> None:
    status, headers, body = raw(running, "GET", "/ui/" + name)
    assert status == 404, (name, body[:200])
    assert headers["x-content-type-options"] == "nosniff"
    assert b"root:" not in body and b"import" not in body


def test_the_page_takes_no_change(running: DaemonProcess) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in ("/", "/ui/app.js"):
            status, _, body = raw(running, method, path, body=b"[" * 10_000)
            assert status == 401, (method, path, body[:200])  # a change: the token first
            assert strict_json(body)["error"]["type"] == "unauthorized"
            status, _, _ = raw(running, method, path, body=b"{}", token=TOKEN)
            assert status == 405, (method, path)
    status, _, body = raw(running, "HEAD", "/")
    assert status == 200 and body == b""


def test_beyond_loopback_the_page_loads_and_its_data_needs_the_token(
    running: DaemonProcess,
) -> None:
    """A read naming a host that is not loopback's counts as one from beyond the node."""
    host = "sre.example"
    assert raw(running, "GET", "/", host=host)[0] == 200
    assert raw(running, "GET", "/ui/app.js", host=host)[0] == 200
    for path in ("/v1/status", "/v1/slos", "/v1/slos/llm/burndown", "/v1/budgets/daily",
                 "/v1/agents?limit=1"):  # fmt: skip
        status, _, body = raw(running, "GET", path, host=host)
        assert status == 401, path
        assert strict_json(body)["error"]["type"] == "unauthorized"
        assert raw(running, "GET", path, host=host, token=TOKEN)[0] == 200, path


# -- the routes the page added to the API -----------------------------------------------------


def test_the_burn_down_of_an_unknown_slo_is_a_404(running: DaemonProcess) -> None:
    for name in ("nope", "%3Cscript%3E", "llm%2Fburndown", "x" * 3000):
        status, answer = send(running, "GET", f"/v1/slos/{name}/burndown")
        assert status == 404, name
        assert strict_json(answer)["error"]["type"] == "slo_not_found"
    status, answer = send(running, "GET", "/v1/slos/llm/burndown?since=nan&limit=-1")
    assert status == 200  # it takes no parameter: they are ignored
    data = strict_json(answer)
    assert data["points"][0][1] == 1.0 and data["total"] == 4


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_bad_paging_numbers_are_400_naming_them(running: DaemonProcess, value: str) -> None:
    for path in ("/v1/budgets/daily", "/v1/agents"):
        for name in ("limit", "offset"):
            if name == "offset" and value in ("0", "1001", "1.5e0"):
                continue  # an offset of 0 or 1001 is fine
            status, answer = send(running, "GET", f"{path}?{name}={value}")
            assert status == 400, (path, name, value, answer[:200])
            error = strict_json(answer)["error"]
            assert error["type"] == "invalid_argument" and error["message"].startswith(name)


def test_paging_past_the_end_and_searching_for_anything(running: DaemonProcess) -> None:
    for path, rows in (("/v1/budgets/daily", "subjects"), ("/v1/agents", "agents")):
        status, answer = send(running, "GET", f"{path}?offset=1000000000&limit=1000")
        assert status == 200
        data = strict_json(answer)
        assert data[rows] == [] and data["total"] == 4 and data["offset"] == 10**9
        status, answer = send(running, "GET", f"{path}?q=" + "x" * 257)
        assert status == 400 and strict_json(answer)["error"]["message"].startswith("q")
        for needle, found in (("A-", 2), ("<b>", 1), ("%00", 0), ("%F0%9F%92%A5", 0), ("", 4)):
            status, answer = send(running, "GET", f"{path}?q={needle}")
            assert status == 200, needle
            data = strict_json(answer)
            assert data["total"] == found and len(data[rows]) == found, needle


def test_the_agents_list_without_paging_keeps_its_shape(running: DaemonProcess) -> None:
    status, answer = send(running, "GET", "/v1/agents")
    data = strict_json(answer)
    assert status == 200 and set(data) == {"agents"} and len(data["agents"]) == 4


def test_a_budget_is_read_by_name_with_its_forecast(running: DaemonProcess) -> None:
    status, answer = send(running, "GET", "/v1/budgets/nope")
    assert status == 404 and strict_json(answer)["error"]["type"] == "budget_not_found"
    status, answer = send(running, "GET", "/v1/budgets/daily?limit=2")
    data = strict_json(answer)
    assert status == 200 and data["total"] == 4 and len(data["subjects"]) == 2
    for subject in data["subjects"]:
        assert subject["points"][0][1] == 0.0
        assert subject["points"][-1][1] == subject["spent_usd"] > 0
        assert subject["window_end"] - subject["window_start"] == 86400
    name = urllib.parse.quote("daily/../daily", safe="")
    assert send(running, "GET", f"/v1/budgets/{name}")[0] == 404
    assert json.loads(send(running, "GET", "/v1/budgets")[1])["budgets"][0]["name"] == "daily"
