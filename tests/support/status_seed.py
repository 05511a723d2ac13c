"""A daemon holding something for every page of the status page, seeded with real traffic.

Real proxied calls through the stand-in provider and real OTLP spans: an SLO burning (LLM
calls failing), a budget near its limit, an incident (opened by the SLO's critical status),
an aborted chaos run, a rollout in progress, recorded traces, and hostile names (agent ids,
SLO label values and span names holding HTML) that the page must show as text.

``python -m tests.support.status_seed DIR`` starts one and prints the page's address (for a
person to look at; Ctrl-C stops it).
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from typing import TYPE_CHECKING, Any

import openai

from tests.support.daemon import LOOPBACK_PORTS, DaemonProcess, merge

if TYPE_CHECKING:
    from pathlib import Path

    from tests.fakes.provider import FakeProvider

TOKEN = "status-page-token"
MODEL = "gpt-4o-mini"
CANDIDATE = "gpt-4.1-mini"
PER_CALL_USD = 0.01
"""What one call costs (a price override: 1000 output tokens... see :func:`config`)."""
BUDGET_LIMIT_USD = 0.1
NEAR_LIMIT_AGENT = "spender"
NEAR_LIMIT_CALLS = 9
"""Calls of :data:`NEAR_LIMIT_AGENT`: 90 % of its budget."""
HOSTILE_AGENT = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
HOSTILE_SPAN = '<img src=x onerror="window.__pwned=3">step'
HOSTILE_LABEL = '<svg onload="window.__pwned=4">'
MESSAGES = [{"role": "user", "content": "hello"}]


def config(provider_url: str, state_dir: Path) -> dict[str, Any]:
    return merge(
        LOOPBACK_PORTS,
        {
            "node": {"name": "status-node"},
            "state_dir": str(state_dir),
            "admin": {"token": TOKEN},
            "proxy": {
                "correlation": {"hold": "0s"},
                "routes": [
                    {
                        "name": "openai",
                        "prefix": "/openai",
                        "upstream": provider_url,
                        "api": "openai",
                    },
                ],
            },  # fmt: skip
            "replay": {"enabled": True},
            "slos": [
                {
                    "name": "llm",
                    "target": 0.99,
                    "window": "30d",
                    "sli": {"kind": "llm_success"},
                    "description": "LLM calls answered",
                },
                {
                    "name": "tasks",
                    "target": 0.95,
                    "window": "7d",
                    "sli": {"kind": "task_success"},
                    "labels": ["agent.id"],
                },
            ],  # fmt: skip
            "budgets": {
                "price_overrides": {
                    model: {"input_per_mtok": 0.0, "output_per_mtok": PER_CALL_USD * 1e6 / 10}
                    for model in (MODEL, CANDIDATE)
                },
                "budgets": [
                    {
                        "name": "per-agent",
                        "scope": "agent",
                        "limit_usd": BUDGET_LIMIT_USD,
                        "window": "day",
                        "action": "alert",
                    },
                ],
            },  # fmt: skip
            "chaos": {
                "enabled": True,
                "experiments": [
                    {
                        "name": "llm-storm",
                        "targets": {"routes": ["openai"], "agents": ["storm-agent"]},
                        "faults": [{"type": "error", "status": 500}],
                        "duration": "1h",
                        "observe_after": "2s",
                        "abort_when": [{"slo": "llm", "burn_rate_above": 14.4, "window": "5m"}],
                    }
                ],
            },
            "rollouts": {
                "rollouts": [
                    {
                        "name": "mini-to-41",
                        "route": "openai",
                        "baseline": MODEL,
                        "candidate": CANDIDATE,
                        "steps": [
                            {"weight": 10, "duration": "1h"},
                            {"weight": 50, "duration": "1h"},
                        ],
                    }
                ]
            },
        },
    )


def client(daemon: DaemonProcess, agent: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"http://{daemon.addresses['proxy']}/openai/v1",
        api_key="sk-seed",
        max_retries=0,
        default_headers={"X-Agent-Id": agent},
    )


def admin(daemon: DaemonProcess, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        daemon.url("admin", path),
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def wait_until(predicate: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def task_spans(daemon: DaemonProcess) -> None:
    """Agent task spans over OTLP (the ``tasks`` SLO, by agent id), one with a hostile agent id
    and span name."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "seed-agent"}))
    provider.add_span_processor(
        SimpleSpanProcessor(
            OTLPSpanExporter(endpoint=f"http://{daemon.addresses['otlp_grpc']}", insecure=True)
        )
    )
    tracer = provider.get_tracer("status-seed")
    for agent, ok in (("planner", True), ("planner", True), (HOSTILE_LABEL, False)):
        root = {"agent.span.kind": "AGENT_TASK", "agent.id": agent, "agent.task.success": ok}
        step = {"agent.span.kind": "TOOL_CALL", "agent.id": agent}
        with tracer.start_as_current_span(HOSTILE_SPAN if not ok else "plan the trip",
                                          attributes=root):  # fmt: skip
            tracer.start_span("search flights", attributes=step).end()
    provider.shutdown()


def seed(daemon: DaemonProcess, fake: FakeProvider) -> dict[str, Any]:
    """Sends the traffic; returns what was made (the chaos run's id...)."""
    fake.reply_words = 10
    # a budget near its limit: 9 calls of 0.01 USD against 0.10
    spender = client(daemon, NEAR_LIMIT_AGENT)
    for _ in range(NEAR_LIMIT_CALLS):
        spender.chat.completions.create(model=MODEL, messages=MESSAGES)
    client(daemon, HOSTILE_AGENT).chat.completions.create(model=MODEL, messages=MESSAGES)
    # the chaos experiment: healthy traffic before, then its fault burns the llm SLO, which
    # aborts it (and opens an incident: the SLO turns critical)
    storm = client(daemon, "storm-agent")
    for _ in range(3):
        storm.chat.completions.create(model=MODEL, messages=MESSAGES)
    admin(daemon, "POST", "/v1/chaos/experiments/llm-storm/start", {})
    for _ in range(20):
        with contextlib.suppress(openai.APIStatusError):
            storm.chat.completions.create(model=MODEL, messages=MESSAGES)
    runs = wait_until(
        lambda: [
            r
            for r in admin(daemon, "GET", "/v1/chaos/runs")["runs"]
            if r["state"] in ("observing", "aborted")
        ]  # fmt: skip
    )
    # more failures from the provider itself: the SLO stays burning
    fake.status = 500
    for _ in range(10):
        with contextlib.suppress(openai.APIStatusError):
            storm.chat.completions.create(model=MODEL, messages=MESSAGES)
    fake.status = 200
    task_spans(daemon)
    admin(daemon, "GET", "/v1/slos")  # evaluated when read: the status change, the incident
    incidents = wait_until(lambda: admin(daemon, "GET", "/v1/incidents?state=open")["incidents"])
    traces = wait_until(lambda: admin(daemon, "GET", "/v1/traces")["traces"])
    return {"chaos_run": runs[0]["id"] if runs else None, "incidents": incidents,
            "traces": traces}  # fmt: skip


def main() -> None:
    import argparse
    from pathlib import Path

    from tests.support.stand_in import ThreadedProvider

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dir", type=Path)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    with ThreadedProvider() as fake:
        daemon = DaemonProcess(args.dir, config(fake.url, args.dir / "state")).start()
        try:
            seed(daemon, fake)
            print(daemon.url("admin", "/"), "token:", TOKEN, flush=True)
            while daemon.alive():
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            daemon.stop()


if __name__ == "__main__":
    main()
