"""Certification through the real daemon: an agent version that passes a chaos experiment
and meets its SLO is certified; one that burns its budget is not, and says so. The verdict
survives a restart, a rollout step requiring the tier waits for it (named in the admin
API's answer), the tier is a metric and its change a signal, and the CLI prints it."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from tests.integration.test_chaos_faults import routes
from tests.support.metrics import scrape

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.support.daemon import DaemonProcess

TOKEN = "tok"
MODEL = "cert-model"
OUTPUT_TOKENS = 5
PER_MTOK = 1000.0
CALL_COST = OUTPUT_TOKENS * PER_MTOK / 1_000_000


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def post(url: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        method="POST",
        data=json.dumps(body or {}).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


class Agent:
    """An agent version calling the tool route and the LLM route through the proxy."""

    def __init__(self, daemon: DaemonProcess, agent: str, version: str) -> None:
        host, port = daemon.addresses["proxy"].rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=10)
        self.headers = {"X-Agent-Id": agent, "X-Agent-Version": version}

    def tool(self, n: int) -> list[int]:
        statuses = []
        for _ in range(n):
            headers = {**self.headers, "Content-Type": "application/json"}
            self.conn.request("POST", "/search/q", body=b'{"q": 1}', headers=headers)
            response = self.conn.getresponse()
            response.read()
            statuses.append(response.status)
        return statuses

    def llm(self, n: int) -> list[int]:
        statuses = []
        body = json.dumps({"model": MODEL, "max_tokens": OUTPUT_TOKENS,
                           "messages": [{"role": "user", "content": "hi"}]}).encode()  # fmt: skip
        for _ in range(n):
            headers = {**self.headers, "Content-Type": "application/json",
                       "Authorization": "Bearer sk-test"}  # fmt: skip
            self.conn.request("POST", "/openai/v1/chat/completions", body=body, headers=headers)
            response = self.conn.getresponse()
            response.read()
            statuses.append(response.status)
        return statuses


def config(provider_url: str) -> dict[str, Any]:
    return {
        "proxy": {"routes": routes(provider_url), "correlation": {"hold": 0}},
        "admin": {"token": TOKEN},
        "slos": [
            {
                "name": "tool-success",
                "target": 0.9,
                "window": "3d",
                "sli": {"kind": "tool_call_success"},
            }
        ],  # fmt: skip
        "budgets": {
            "price_overrides": {MODEL: {"input_per_mtok": 0.0, "output_per_mtok": PER_MTOK}},
            "budgets": [
                {"name": "per-agent", "scope": "agent", "limit_usd": 2 * CALL_COST, "window": "day"}
            ],  # fmt: skip
        },
        "chaos": {
            "enabled": True,
            "experiments": [
                {
                    "name": "tool-errors",
                    "targets": {"routes": ["search"], "agents": ["good", "spender"]},
                    "faults": [{"type": "error", "status": 503, "probability": 0.3}],
                    "duration": "2s",
                    "observe_after": "1s",
                }
            ],
        },
        "rollouts": {
            "evaluate_every": "1s",
            "rollouts": [
                {
                    "name": "good-1",
                    "route": "search",
                    "vary": "agent_version",
                    "agent": "good",
                    "baseline": "0.9",
                    "candidate": "1.0",
                    "steps": [
                        {"weight": 10, "pause": True},
                        {"weight": 100, "pause": True, "require_tier": "bronze"},
                    ],
                }  # fmt: skip
            ],
        },
        "certification": {
            "bucket": "1m",
            "evaluate_every": "1s",
            "tiers": [
                {
                    "name": "bronze",
                    "slo": {"slos": ["tool-success"], "window": "1h", "min_events": 50},
                    "budget": {"window": "1h", "max_exhaustions": 0},
                    "chaos": {
                        "window": "1h",
                        "min_passed": 1,
                        "min_score": 50,
                        "faults": ["error"],
                    },  # fmt: skip
                },
                {"name": "silver", "chaos": {"window": "1h", "min_passed": 3}},
            ],
        },
    }


def tier_sample(agent: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return "agent_sre_certification_tier", (("agent", agent), ("version", "1.0"))


def certification(daemon: DaemonProcess, agent: str) -> Any:
    status, body = get(daemon.url("admin", f"/v1/certifications/{agent}?version=1.0"))
    assert status == 200, body
    return body


def test_chaos_passed_and_slo_met_certify_a_burnt_budget_does_not(
    make_daemon: Callable[..., DaemonProcess], provider_url: str
) -> None:
    daemon = make_daemon(config(provider_url)).start()
    good, spender = Agent(daemon, "good", "1.0"), Agent(daemon, "spender", "1.0")
    assert good.tool(60) == [200] * 60
    assert spender.tool(60) == [200] * 60
    assert spender.llm(2) == [200, 200]  # exactly the budget: exhausted

    # before any chaos run: not certified, and the rollout step waits, saying why
    verdict = wait_until(lambda: certification(daemon, "good")["criteria"] and
                         certification(daemon, "good"))  # fmt: skip
    assert verdict["tier"] is None and verdict["next_tier"] == "bronze"
    assert any(m.startswith("bronze: 1 chaos run(s) passed") for m in verdict["missing"])
    status, refused = post(daemon.url("admin", "/v1/rollouts/good-1/promote"))
    assert status == 409 and refused["error"]["type"] == "certification_required"
    assert "bronze" in refused["error"]["message"] and "chaos run" in refused["error"]["message"]

    status, run = post(daemon.url("admin", "/v1/chaos/experiments/tool-errors/start"))
    assert status == 201, run
    deadline = time.monotonic() + 2.5
    faulted = 0
    while time.monotonic() < deadline:  # both agents call while the faults run
        faulted += good.tool(2).count(503) + spender.tool(2).count(503)
        time.sleep(0.2)
    assert faulted > 0
    finished = wait_until(
        lambda: (
            get(daemon.url("admin", f"/v1/chaos/runs/{run['id']}"))[1]["state"] == "completed"
            or good.tool(1) == [0]
        )
    )
    assert finished
    good.tool(100)
    spender.tool(100)

    verdict = wait_until(lambda: (v := certification(daemon, "good"))["tier"] == "bronze" and v)
    assert verdict, certification(daemon, "good")["missing"]
    (chaos,) = [c for c in verdict["criteria"] if c["tier"] == "bronze" and
                c["name"] == "chaos_experiments"]  # fmt: skip
    assert chaos["met"] and chaos["evidence"]["runs"][0]["run_id"] == run["id"]
    assert verdict["next_tier"] == "silver"

    burnt = certification(daemon, "spender")
    assert burnt["tier"] is None
    (budget,) = [c for c in burnt["criteria"] if c["name"] == "budget_adherence"]
    assert not budget["met"] and budget["evidence"]["exhaustions"][0]["budget"] == "per-agent"
    assert [m for m in burnt["missing"] if "budget exhaustion" in m]
    assert all(c["met"] for c in burnt["criteria"] if c["name"] != "budget_adherence"
               and c["tier"] == "bronze")  # fmt: skip

    # the list, the metric, the signal
    status, listing = get(daemon.url("admin", "/v1/certifications"))
    assert status == 200 and listing["tiers"] == ["bronze", "silver"]
    tiers = {(i["agent"], i["version"]): i["tier"] for i in listing["items"]}
    assert tiers[("good", "1.0")] == "bronze" and tiers[("spender", "1.0")] is None
    metrics = wait_until(
        lambda: (
            (m := scrape(daemon.url("metrics", "/metrics")))
            and m.get(tier_sample("good")) == 1.0
            and m
        )
    )
    assert metrics, "tier gauge not set"
    assert metrics[tier_sample("spender")] == 0.0
    _, signals = get(daemon.url("admin", "/v1/signals?source=certification"))
    gained = [s for s in signals["signals"] if s["type"] == "certification_tier_gained"]
    assert gained and gained[0]["labels"] == {"agent_id": "good", "version": "1.0"}

    # the rollout step now enters
    status, promoted = post(daemon.url("admin", "/v1/rollouts/good-1/promote"))
    assert status == 200 and promoted["step"] == 1, promoted

    # the CLI: text, markdown, json
    env = {**os.environ, "AGENT_SRE_ADMIN_TOKEN": TOKEN}

    def certify(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agent_sre_daemon.cli", "certify", *args,
             "--admin", daemon.addresses["admin"]],
            capture_output=True, text=True, env=env, timeout=30, check=False,
        )  # fmt: skip

    text = certify("spender", "--version", "1.0")
    assert text.returncode == 0, text.stderr
    assert "spender 1.0: tier none (next: bronze)" in text.stdout
    assert "[FAIL] bronze   budget_adherence" in text.stdout and "per-agent" in text.stdout
    markdown = certify("good", "--format", "markdown")
    assert "### Certification: good 1.0 — **bronze**" in markdown.stdout
    assert run["id"].replace("-", "-") in markdown.stdout.replace("\\", "")
    as_json = certify("good", "--json")
    assert json.loads(as_json.stdout)["tier"] == "bronze"
    unknown = certify("nobody")
    assert unknown.returncode == 1 and "no evidence of agent 'nobody'" in unknown.stderr

    # a restart keeps the evidence (span buckets, the chaos run, the exhaustion)
    assert daemon.stop() == 0
    daemon.start()
    kept = certification(daemon, "good")
    assert kept["tier"] == "bronze", kept["missing"]
    again = certification(daemon, "spender")
    assert again["tier"] is None and any("budget exhaustion" in m for m in again["missing"])
    _, signals = get(daemon.url("admin", "/v1/signals?source=certification"))
    assert signals["signals"] == []  # the tiers held before the restart are not announced again
