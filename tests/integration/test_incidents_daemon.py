"""Incidents in the running daemon: an SLO pushed into fast burn by real spans opens ONE
incident, reaches a real Alertmanager and the local receivers (webhook, PagerDuty, Slack)
in their documented shapes, runs the declared actions, and resolves when the burn stops;
a receiver that is down is retried and counted while ingest and the proxy keep serving,
and what it missed is delivered after a restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openai
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

from agent_sre.alerts.payloads import verify_webhook
from tests.support.durability import Sender
from tests.support.metrics import scrape
from tests.support.receivers import ALERTMANAGER, Alertmanager, Receiver, free_port

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.support.daemon import DaemonProcess

SECRET = "whsec-test"
SLO = {"name": "llm", "target": 0.99, "window": "30d", "sli": {"kind": "llm_success"}}
FAST_RETRY = {"attempts": 2, "initial_interval": "50ms", "max_interval": "200ms"}


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def post(url: str, token: str = "tok") -> Any:
    request = urllib.request.Request(
        url, data=b"{}", method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def wait_for(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def llm_spans(daemon: DaemonProcess, good: int, bad: int) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "agent"}))
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=f"http://{daemon.addresses['otlp_grpc']}", insecure=True),
            max_export_batch_size=512,
            # room for every span: a dropped good span would leave the error budget spent
            max_queue_size=max(good + bad + 1, 512),
        )
    )
    tracer = provider.get_tracer("incident-test")
    for index in range(good + bad):
        span = tracer.start_span("chat", attributes={"gen_ai.operation.name": "chat"})
        if index < bad:
            span.set_status(Status(StatusCode.ERROR))
        span.end()
    provider.force_flush()
    provider.shutdown()


def incidents(daemon: DaemonProcess, state: str = "all") -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = get(daemon.url("admin", f"/v1/incidents?state={state}"))[
        "incidents"
    ]
    return rows


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    if ALERTMANAGER is None:
        pytest.skip("prometheus-alertmanager is not installed (tests/setup-services.sh)")
    manager = Alertmanager(tmp_path / "alertmanager")
    yield manager
    manager.stop()


@pytest.fixture
def receivers() -> Iterator[dict[str, Receiver]]:
    made = {name: Receiver() for name in ("webhook", "pagerduty", "slack")}
    yield made
    for receiver in made.values():
        receiver.stop()


def test_fast_burn_opens_one_incident_notifies_acts_and_resolves(
    make_daemon: Callable[..., DaemonProcess],
    alertmanager: Alertmanager,
    receivers: dict[str, Receiver],
) -> None:
    config = {
        "admin": {"endpoint": "127.0.0.1:0", "token": "tok"},
        "slos": [SLO],
        "incidents": {
            "rules": [
                {
                    "name": "block-on-burn",
                    "match": {"types": ["slo_status"], "labels": {"slo": "llm"},
                              "min_severity": "critical"},
                    "actions": [
                        {"action": "block_agent",
                         "params": {"agent_id": "runaway", "reason": "SLO {slo} burning"}},
                        {"action": "stop_chaos"},
                    ],
                },
                {
                    "name": "rehearsal",
                    "match": {"types": ["slo_status"]},
                    "actions": [{"action": "unblock_agent", "params": {"agent_id": "x"}}],
                    "dry_run": True,
                },
            ]
        },
        "alerting": {
            "external_url": "http://sre.example:8791",
            "retry": FAST_RETRY,
            "receivers": [
                {"name": "am", "type": "alertmanager", "url": alertmanager.url},
                {"name": "hook", "type": "webhook", "url": receivers["webhook"].url,
                 "secret": SECRET},
                {"name": "pd", "type": "pagerduty", "url": receivers["pagerduty"].url,
                 "routing_key": "R0UT1NG"},
                {"name": "chat", "type": "slack", "url": receivers["slack"].url},
            ],
        },
    }  # fmt: skip
    daemon = make_daemon(config).start()

    # 30 failing LLM calls: fast burn (the SLO is evaluated when read)
    llm_spans(daemon, good=0, bad=30)
    get(daemon.url("admin", "/v1/slos"))
    opened = wait_for(lambda: incidents(daemon, "open"), "an incident")
    time.sleep(0.5)
    get(daemon.url("admin", "/v1/slos"))
    assert len(incidents(daemon)) == 1, "one incident, not one per span or per evaluation"
    incident = get(daemon.url("admin", f"/v1/incidents/{opened[0]['id']}"))
    assert incident["severity"] == "critical"
    assert incident["slos"] == ["llm"]
    assert incident["type"] == "slo_status"

    # the declared actions ran
    actions = {e["details"]["action"]: e for e in incident["timeline"] if e["kind"] == "action"}
    assert actions["block_agent"]["details"]["outcome"] == "ran"
    assert "runaway blocked (SLO llm burning)" in actions["block_agent"]["message"]
    # the chaos engine offers stop_chaos on every node; nothing was running here
    assert actions["stop_chaos"]["details"]["outcome"] == "ran"
    assert "chaos stopped (nothing was running)" in actions["stop_chaos"]["message"]
    assert actions["unblock_agent"]["details"]["outcome"] == "dry_run"
    agents = {a["agent_id"]: a for a in get(daemon.url("admin", "/v1/agents"))["agents"]}
    assert agents["runaway"]["blocked"] is True
    assert "x" not in agents  # the dry run did nothing

    # the real Alertmanager has it, with the labels it routes on
    def firing() -> list[dict[str, Any]]:
        return [a for a in alertmanager.alerts() if a["labels"].get("incident") == incident["id"]]

    alert = wait_for(firing, "the alert in Alertmanager")[0]
    assert alert["labels"]["alertname"] == "AgentSRESloStatus"
    assert alert["labels"]["severity"] == "critical"
    assert alert["labels"]["slo"] == "llm"
    assert alert["labels"]["node"] == "test-node"
    assert alert["status"]["state"] == "active"
    assert alert["annotations"]["summary"].startswith("SLO llm")
    assert alert["generatorURL"] == f"http://sre.example:8791/v1/incidents/{incident['id']}"

    # the webhook is signed, PagerDuty triggered with a stable dedup key, Slack has text
    hook = wait_for(lambda: receivers["webhook"].requests, "the webhook")[0]
    assert verify_webhook(SECRET, hook[1], hook[2], time.time())
    assert not verify_webhook("wrong", hook[1], hook[2], time.time())
    assert json.loads(hook[2])["event"] == "opened"
    pd = wait_for(lambda: receivers["pagerduty"].bodies(), "PagerDuty")[0]
    assert pd["routing_key"] == "R0UT1NG"
    assert pd["event_action"] == "trigger"
    assert pd["dedup_key"] == f"agent-sre/test-node/{incident['id']}"
    assert pd["payload"]["severity"] == "critical"
    assert pd["payload"]["source"] == "test-node"
    slack = wait_for(lambda: receivers["slack"].bodies(), "Slack")[0]
    assert incident["id"] in slack["text"]
    assert slack["blocks"][0]["type"] == "header"

    # the burn stops: enough good calls bring the SLO back to healthy, the incident resolves
    llm_spans(daemon, good=6000, bad=0)  # 30 bad in 6030: half the budget left

    def resolved_incidents() -> list[dict[str, Any]]:
        get(daemon.url("admin", "/v1/slos"))  # evaluates now, not at the next 10 s tick
        return [i for i in incidents(daemon) if i["state"] == "resolved"]

    resolved = wait_for(resolved_incidents, "the resolution", timeout=40.0)[0]
    assert resolved["resolved_by"] == "signals"
    wait_for(lambda: not firing(), "the alert to be resolved in Alertmanager")
    wait_for(
        lambda: [b for b in receivers["pagerduty"].bodies() if b["event_action"] == "resolve"],
        "PagerDuty resolve",
    )
    events = [json.loads(body)["event"] for _, _, body in receivers["webhook"].requests]
    wait_for(lambda: "resolved" in [json.loads(b)["event"] for _, _, b in
                                    receivers["webhook"].requests], "webhook resolved")  # fmt: skip
    assert events[0] == "opened"

    # the PagerDuty routing key and the webhook secret are in no store and no log line
    state = Path(daemon.config["state_dir"])
    for path in [*state.rglob("*"), daemon.log_path]:
        if path.is_file():
            data = path.read_bytes()
            assert b"R0UT1NG" not in data, path
            assert SECRET.encode() not in data, path

    metrics = scrape(daemon.url("metrics", "/metrics"))
    assert metrics[("agent_sre_incidents_opened_total", (("severity", "critical"),))] == 1
    assert metrics[("agent_sre_incidents_resolved_total", (("by", "signals"),))] == 1
    assert metrics[("agent_sre_incidents_open", (("severity", "critical"),))] == 0
    assert metrics[("agent_sre_incident_time_to_resolve_seconds_count", ())] == 1
    assert metrics[("agent_sre_notifications_sent_total", (("receiver", "am"),))] >= 2

    # the postmortem draft has what the daemon knows, and room for what it cannot
    with urllib.request.urlopen(
        daemon.url("admin", f"/v1/incidents/{incident['id']}/postmortem"), timeout=10
    ) as response:
        text = response.read().decode()
    assert text.startswith(f"# Postmortem: {incident['id']}")
    for section in ("## Impact", "## Timeline", "## Actions taken", "## Cause", "## Follow-ups"):
        assert section in text
    assert "SLOs affected: llm" in text


def test_operators_ack_and_resolve_with_the_token(
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    daemon = make_daemon(
        {"admin": {"endpoint": "127.0.0.1:0", "token": "tok"}, "slos": [SLO]}
    ).start()
    llm_spans(daemon, good=0, bad=20)
    get(daemon.url("admin", "/v1/slos"))
    incident_id = wait_for(lambda: incidents(daemon, "open"), "an incident")[0]["id"]
    base = daemon.url("admin", f"/v1/incidents/{incident_id}")

    with pytest.raises(urllib.error.HTTPError) as refused:
        post(f"{base}/ack", token="wrong")
    assert refused.value.code == 401

    # the CLI: list, a refused change without the token, ack with it, a postmortem file
    admin = daemon.addresses["admin"]

    def cli(*args: str, token: str = "") -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "AGENT_SRE_ADMIN_TOKEN": token}
        return subprocess.run(
            [sys.executable, "-m", "agent_sre_daemon.cli", "incidents", *args, "--admin", admin],
            capture_output=True, text=True, env=env, timeout=30, check=False,
        )  # fmt: skip

    listed = cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [i["id"] for i in json.loads(listed.stdout)["incidents"]] == [incident_id]
    assert incident_id in cli().stdout
    no_token = cli("ack", incident_id)
    assert no_token.returncode == 1
    assert "AGENT_SRE_ADMIN_TOKEN" in no_token.stderr
    acked = cli("ack", incident_id, token="tok")
    assert acked.returncode == 0, acked.stderr
    assert acked.stdout.strip() == f"incident {incident_id}: acknowledged"
    assert "acknowledged by operator" in cli("show", incident_id).stdout
    missing_cli = cli("show", "inc-404")
    assert missing_cli.returncode == 1
    assert "no incident 'inc-404'" in missing_cli.stderr
    draft = daemon.workdir / "pm.md"
    written = cli("postmortem", incident_id, "-o", str(draft))
    assert written.returncode == 0, written.stderr
    assert draft.read_text().startswith(f"# Postmortem: {incident_id}")
    assert cli("postmortem", incident_id, "-o", "/nonexistent/dir/pm.md").returncode == 1
    done = post(f"{base}/resolve")
    assert done["state"] == "resolved"
    assert done["resolved_by"] == "operator"
    with pytest.raises(urllib.error.HTTPError) as late:
        post(f"{base}/ack")
    assert late.value.code == 409
    with pytest.raises(urllib.error.HTTPError) as missing:
        get(daemon.url("admin", "/v1/incidents/inc-999"))
    assert missing.value.code == 404
    assert json.load(missing.value)["error"]["type"] == "incident_not_found"
    with pytest.raises(urllib.error.HTTPError) as bad:
        get(daemon.url("admin", "/v1/incidents?state=maybe"))
    assert bad.value.code == 400

    # incidents survive a restart
    assert daemon.stop() == 0
    daemon.start()  # on new ports
    kept = get(daemon.url("admin", f"/v1/incidents/{incident_id}"))
    assert kept["state"] == "resolved"
    assert [e["kind"] for e in kept["timeline"]][-2:] == ["acknowledged", "resolved"]


def test_a_receiver_that_is_down_is_retried_and_its_notifications_survive_a_restart(
    make_daemon: Callable[..., DaemonProcess], provider_url: str
) -> None:
    port = free_port()  # nobody listens here yet
    daemon = make_daemon(
        {
            "admin": {"endpoint": "127.0.0.1:0", "token": "tok"},
            "slos": [SLO],
            "proxy": {
                "endpoint": "127.0.0.1:0",
                "routes": [
                    {
                        "name": "openai",
                        "prefix": "/openai",
                        "upstream": provider_url,
                        "api": "openai",
                    }
                ],
            },
            "alerting": {
                "retry": FAST_RETRY,
                "receivers": [
                    {
                        "name": "hook",
                        "type": "webhook",
                        "url": f"http://127.0.0.1:{port}/hook",
                        "secret": SECRET,
                    }
                ],
            },
        }  # fmt: skip
    ).start()
    client = openai.OpenAI(
        base_url=f"http://{daemon.addresses['proxy']}/openai/v1", api_key="sk-x", max_retries=0
    )
    sender = Sender(daemon.addresses["otlp_grpc"])

    def latencies() -> tuple[float, float]:
        started = time.perf_counter()
        assert sender.send(spans=50)
        ingest = time.perf_counter() - started
        started = time.perf_counter()
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        return ingest, time.perf_counter() - started

    before = [latencies() for _ in range(5)]
    llm_spans(daemon, good=0, bad=20)
    get(daemon.url("admin", "/v1/slos"))
    wait_for(lambda: incidents(daemon, "open"), "an incident")

    def failures() -> float:
        metrics = scrape(daemon.url("metrics", "/metrics"))
        return metrics.get(("agent_sre_notifications_failed_total", (("receiver", "hook"),)), 0)

    wait_for(lambda: failures() >= 2, "retries of the receiver that is down")
    during = [latencies() for _ in range(5)]
    print(
        "ingest / proxy latency before the receiver failed: "
        f"{min(b[0] for b in before) * 1000:.1f} / {min(b[1] for b in before) * 1000:.1f} ms; "
        f"while it is retried: {min(d[0] for d in during) * 1000:.1f} / "
        f"{min(d[1] for d in during) * 1000:.1f} ms"
    )
    metrics = scrape(daemon.url("metrics", "/metrics"))
    assert metrics[("agent_sre_notifications_pending", ())] >= 1
    assert "notification to hook failed" in daemon.log()
    sender.close()

    # the receiver comes back while the daemon is down: the outbox is delivered on restart
    assert daemon.stop() == 0
    receiver = Receiver(port)
    try:
        daemon.start()
        hook = wait_for(lambda: receiver.requests, "the delivery after the restart")[0]
        assert hook[0] == "/hook"
        assert json.loads(hook[2])["event"] == "opened"
        assert verify_webhook(SECRET, hook[1], hook[2], time.time())
    finally:
        receiver.stop()


def test_a_throttle_put_on_by_a_rule_outlives_restarts_and_crashes_until_lifted(
    make_daemon: Callable[..., DaemonProcess], provider_url: str
) -> None:
    slo_llm = {"types": ["slo_status"], "labels": {"slo": "llm"}}
    daemon = make_daemon(
        {
            "admin": {"endpoint": "127.0.0.1:0", "token": "tok"},
            "slos": [SLO],
            "proxy": {
                "endpoint": "127.0.0.1:0",
                "routes": [
                    {
                        "name": "openai",
                        "prefix": "/openai",
                        "upstream": provider_url,
                        "api": "openai",
                    }
                ],
            },
            "incidents": {
                "rules": [
                    {
                        "name": "slow-down",
                        "match": {**slo_llm, "min_severity": "critical"},
                        "when": ["opened"],
                        "actions": [
                            {
                                "action": "throttle_agent",
                                "params": {
                                    "agent_id": "runaway",
                                    "requests_per_minute": "0.5",
                                    "for": "1h",
                                },
                            }
                        ],
                    },
                    {
                        "name": "free-again",
                        "match": slo_llm,
                        "when": ["resolved"],
                        "actions": [
                            {"action": "unthrottle_agent", "params": {"agent_id": "runaway"}}
                        ],
                    },
                ]
            },
        }
    ).start()

    def calls(agent: str, count: int = 2) -> list[str]:
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
            except openai.RateLimitError as refused:
                assert int(refused.response.headers["retry-after"]) > 0
                out.append(refused.response.headers["x-agent-sre-error"])
        return out

    def actions(incident_id: str) -> list[tuple[str, str]]:
        incident = get(daemon.url("admin", f"/v1/incidents/{incident_id}"))
        return [
            (e["details"]["action"], e["details"]["outcome"])
            for e in incident["timeline"]
            if e["kind"] == "action"
        ]

    def incident_saved() -> bool:  # the gauge is set once the incident is written
        metrics = scrape(daemon.url("metrics", "/metrics"))
        return metrics.get(("agent_sre_incidents_open", (("severity", "critical"),))) == 1

    assert calls("runaway") == ["ok", "ok"]
    llm_spans(daemon, good=0, bad=30)
    get(daemon.url("admin", "/v1/slos"))
    incident_id = wait_for(lambda: incidents(daemon, "open"), "an incident")[0]["id"]
    wait_for(lambda: actions(incident_id) == [("throttle_agent", "ran")], "the throttle")
    wait_for(incident_saved, "the incident saved")
    # one call, then the pace of one call each two minutes
    assert calls("runaway") == ["ok", "agent_throttled"]
    assert calls("calm") == ["ok", "ok"]

    # a restart does not free it, nor give it a fresh call
    assert daemon.stop() == 0
    daemon.start()
    assert calls("runaway") == ["agent_throttled", "agent_throttled"]
    assert calls("calm") == ["ok", "ok"]
    assert "agents throttled: 1" in daemon.log()

    # nor does a crash
    daemon.kill()
    daemon.start()
    assert calls("runaway") == ["agent_throttled", "agent_throttled"]
    assert actions(incident_id) == [("throttle_agent", "ran")]  # restored, not put on again

    # the SLO recovers: the incident resolves, the rule lifts the throttle, for good
    llm_spans(daemon, good=6000, bad=0)

    def resolved() -> bool:
        get(daemon.url("admin", "/v1/slos"))  # evaluates now, not at the next 10 s tick
        return bool(get(daemon.url("admin", f"/v1/incidents/{incident_id}"))["state"] == "resolved")

    wait_for(resolved, "the resolution", timeout=40.0)
    wait_for(lambda: ("unthrottle_agent", "ran") in actions(incident_id), "the unthrottle")
    assert calls("runaway") == ["ok", "ok"]
    assert daemon.stop() == 0
    daemon.start()
    assert calls("runaway") == ["ok", "ok"]
