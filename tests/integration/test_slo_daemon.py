"""SLOs computed by the running daemon from real OTLP spans, read back from the admin API
and /metrics; counts survive a restart and a reload keeps unchanged SLOs' buckets."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from tests.support.metrics import scrape

if TYPE_CHECKING:
    from tests.support.daemon import DaemonProcess

SLOS: list[dict[str, Any]] = [
    {"name": "tasks", "target": 0.99, "window": "30d", "sli": {"kind": "task_success"}},
    {
        "name": "tools",
        "target": 0.95,
        "window": "7d",
        "sli": {"kind": "tool_call_success", "match": {"gen_ai.tool.name": "search"}},
    },
    {
        "name": "llm",
        "target": 0.99,
        "window": "28d",
        "sli": {"kind": "llm_success"},
        "labels": ["agent.id"],
    },
    {"name": "policy", "target": 0.999, "window": "30d", "sli": {"kind": "policy_compliance"}},
    {
        "name": "depth",
        "target": 0.9,
        "window": "30d",
        "sli": {"kind": "delegation_depth", "threshold": 2},
    },
    {
        "name": "trust",
        "target": 0.9,
        "window": "30d",
        "sli": {"kind": "trust_score", "threshold": 0.5},
    },
    {
        "name": "cost",
        "target": 0.9,
        "window": "30d",
        "sli": {"kind": "cost_per_task", "threshold": 0.001, "match": {"agent.id": "coster"}},
    },
]


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def emit(daemon: DaemonProcess) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "agent"}))
    provider.add_span_processor(
        SimpleSpanProcessor(
            OTLPSpanExporter(endpoint=f"http://{daemon.addresses['otlp_grpc']}", insecure=True)
        )
    )
    tracer = provider.get_tracer("slo-test")
    # tasks: 3 good (one by agent.task.success), 1 bad by attribute, 1 bad by status
    for success in (True, True, None):
        attrs: dict[str, Any] = {"agent.span.kind": "AGENT_TASK"}
        if success is not None:
            attrs["agent.task.success"] = success
        tracer.start_span("task", attributes=attrs).end()
    tracer.start_span(
        "task", attributes={"agent.span.kind": "AGENT_TASK", "agent.task.success": False}
    ).end()
    failed = tracer.start_span("task", attributes={"gen_ai.operation.name": "invoke_agent"})
    failed.set_status(Status(StatusCode.ERROR))
    failed.end()
    # tools: 2 search calls (one failing), 1 other tool not matched
    tracer.start_span(
        "t", attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}
    ).end()
    bad_tool = tracer.start_span(
        "t", attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}
    )
    bad_tool.set_status(Status(StatusCode.ERROR))
    bad_tool.end()
    tracer.start_span(
        "t", attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "calc"}
    ).end()
    # llm by agent: a1 good x2, a2 bad x1
    for agent, ok in (("a1", True), ("a1", True), ("a2", False)):
        s = tracer.start_span(
            "chat", attributes={"gen_ai.operation.name": "chat", "agent.id": agent}
        )
        if not ok:
            s.set_status(Status(StatusCode.ERROR))
        s.end()
    # policy: allow, deny
    for decision in ("allow", "deny"):
        tracer.start_span(
            "p", attributes={"agent.span.kind": "POLICY_CHECK", "agent.policy.decision": decision}
        ).end()
    # delegation depth 1 (good), 3 (bad)
    for depth in (1, 3):
        tracer.start_span(
            "d", attributes={"agent.span.kind": "DELEGATION", "agent.delegation.depth": depth}
        ).end()
    # trust score on any span
    for score in (0.9, 0.2):
        tracer.start_span("x", attributes={"agent.trust_score": score}).end()
    # cost per task: LLM spans priced by the daemon from token usage, summed per trace
    # (gpt-4o-mini, 1000 in + 500 out = $0.00045 a call): 2 calls good, 3 calls bad at $0.001
    for calls in (2, 3):
        with tracer.start_as_current_span(
            "task", attributes={"agent.span.kind": "AGENT_TASK", "agent.id": "coster"}
        ):
            for _ in range(calls):
                tracer.start_span(
                    "chat",
                    attributes={
                        "gen_ai.operation.name": "chat",
                        "gen_ai.provider.name": "openai",
                        "gen_ai.request.model": "gpt-4o-mini",
                        "gen_ai.usage.input_tokens": 1000,
                        "gen_ai.usage.output_tokens": 500,
                    },
                ).end()
    provider.shutdown()


def counts(daemon: DaemonProcess) -> dict[str, tuple[int, int]]:
    data = get(daemon.url("admin", "/v1/slos"))
    return {
        slo["name"]: (slo["overall"]["events_good"], slo["overall"]["events_bad"])
        for slo in data["slos"]
    }


EXPECTED = {
    "tasks": (5, 2),
    "tools": (1, 1),
    "llm": (7, 1),
    "policy": (1, 1),
    "depth": (1, 1),
    "trust": (1, 1),
    "cost": (1, 1),
}


def test_slis_from_real_spans_api_metrics_restart_and_reload(make_daemon) -> None:
    daemon = make_daemon({"slos": SLOS}).start()
    emit(daemon)
    assert counts(daemon) == EXPECTED

    # Status changes are signals (for incident handling), listed with the SLOs.
    signals = get(daemon.url("admin", "/v1/slos"))["signals"]
    assert any(sig["slo"] == "tasks" and sig["old"] == "HEALTHY" for sig in signals), signals

    tasks = get(daemon.url("admin", "/v1/slos/tasks"))
    assert tasks["target"] == 0.99
    assert tasks["overall"]["budget"]["remaining_ratio"] < 0  # 2 bad of 5 at a 99% target
    assert tasks["status"] in ("CRITICAL", "EXHAUSTED")

    with pytest.raises(urllib.error.HTTPError) as info:
        get(daemon.url("admin", "/v1/slos/nope"))
    assert info.value.code == 404

    metrics = scrape(daemon.url("metrics", "/metrics"))
    assert (
        metrics[
            ("agent_sre_slo_events_total", (("agent_id", ""), ("result", "bad"), ("slo", "tasks")))
        ]
        == 2
    )
    assert (
        metrics[
            ("agent_sre_slo_events_total", (("agent_id", "a2"), ("result", "bad"), ("slo", "llm")))
        ]
        == 1
    )
    assert metrics[("agent_sre_slo_target_ratio", (("agent_id", ""), ("slo", "policy")))] == 0.999
    assert metrics[
        ("agent_sre_slo_sli_ratio", (("agent_id", ""), ("slo", "tasks"), ("window", "5m")))
    ] == pytest.approx(5 / 7)
    assert (
        metrics[
            (
                "agent_sre_slo_alert_firing",
                (("agent_id", ""), ("long_window", "1h"), ("severity", "page"), ("slo", "tasks")),
            )
        ]
        == 1
    )

    # The CLI reads the same API: a table for people, JSON for machines.
    cli = [sys.executable, "-m", "agent_sre_daemon.cli", "slo"]
    listing = subprocess.run(
        [*cli, "list", "--admin", daemon.addresses["admin"]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listing.returncode == 0, listing.stderr
    assert "tasks" in listing.stdout and "policy" in listing.stdout
    shown = subprocess.run(
        [*cli, "show", "llm", "--json", "--admin", daemon.addresses["admin"]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["overall"]["events_bad"] == 1

    # Restart: the counts come back from state_dir.
    assert daemon.stop() == 0
    daemon.start()
    assert counts(daemon) == EXPECTED

    # Reload with one SLO changed (its SLI) and one raised target: the unchanged SLOs and
    # the one whose target rose keep their counts; the changed one starts over.
    changed = [dict(slo) for slo in SLOS]
    changed[0] = {**changed[0], "target": 0.995}
    changed[1] = {
        **changed[1],
        "sli": {"kind": "tool_call_success", "match": {"gen_ai.tool.name": "calc"}},
    }
    daemon.config["admin"] = {"endpoint": "127.0.0.1:0", "token": "t"}
    daemon.write_config({**daemon.config, "slos": changed})
    daemon.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "SLO counts carried over" not in daemon.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    after = counts(daemon)
    assert after["tasks"] == EXPECTED["tasks"]
    assert after["llm"] == EXPECTED["llm"]
    assert after["tools"] == (0, 0)


def emit_tasks(daemon: DaemonProcess, good: int, bad: int) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "agent"}))
    provider.add_span_processor(
        SimpleSpanProcessor(
            OTLPSpanExporter(endpoint=f"http://{daemon.addresses['otlp_grpc']}", insecure=True)
        )
    )
    tracer = provider.get_tracer("slo-crash-test")
    for success in [True] * good + [False] * bad:
        attrs = {"agent.span.kind": "AGENT_TASK", "agent.task.success": success}
        tracer.start_span("task", attributes=attrs).end()
    provider.shutdown()


def test_a_kill_9_loses_only_the_counts_since_the_last_periodic_save(make_daemon) -> None:
    """SLO counts are saved every SAVE_EVERY_S (docs/kubernetes.md says so): after kill -9
    the daemon comes back with everything counted before the last save and nothing after."""
    from agent_sre_daemon.slo.runtime import EVALUATE_EVERY_S, SAVE_EVERY_S, SNAPSHOT_FILE

    slos = [{"name": "tasks", "target": 0.99, "window": "30d", "sli": {"kind": "task_success"}}]
    daemon = make_daemon({"slos": slos}).start()
    snapshot = daemon.workdir / "state" / SNAPSHOT_FILE
    emit_tasks(daemon, good=4, bad=1)
    assert counts(daemon) == {"tasks": (4, 1)}
    # the periodic save (no stop, no reload): within one interval and one evaluation tick
    deadline = time.monotonic() + SAVE_EVERY_S + EVALUATE_EVERY_S + 30
    while not snapshot.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert snapshot.exists(), "no periodic save of the SLO counts"
    emit_tasks(daemon, good=2, bad=2)  # after the save: these are what a crash loses
    assert counts(daemon) == {"tasks": (6, 3)}
    daemon.kill()
    daemon.start()
    assert counts(daemon) == {"tasks": (4, 1)}
    assert "restored SLO counts of tasks" in daemon.log()


def test_the_kubernetes_doc_states_the_save_interval() -> None:
    from pathlib import Path

    from agent_sre_daemon.slo.runtime import SAVE_EVERY_S

    doc = (Path(__file__).parents[2] / "docs" / "kubernetes.md").read_text()
    assert f"every {int(SAVE_EVERY_S)} s" in doc
