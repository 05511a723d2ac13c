"""A daemon with something of everything: SLOs (one per agent), budgets (one nearly spent and
one refusing), a running chaos experiment, a rollout, proxied LLM and tool calls (streamed
too), received spans (one refused), and an upstream that cannot be reached. The Grafana and
``agent-sre top`` tests read what it exports."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.support.receivers import free_port

if TYPE_CHECKING:
    from tests.support.daemon import DaemonProcess

TOKEN = "tok"
AGENTS = ("a1", "a2", "spender")
SLOS = [
    {"name": "agent-llm", "target": 0.99, "sli": {"kind": "llm_success"}, "labels": ["agent.id"]},
    {"name": "tool-calls", "target": 0.95, "sli": {"kind": "tool_call_success"}},
]
SPENDER_LIMIT_USD = 0.0005


def config(provider_url: str) -> dict[str, Any]:
    routes = [
        {"name": "openai", "prefix": "/openai", "upstream": provider_url, "api": "openai"},
        {"name": "search", "prefix": "/search", "upstream": provider_url + "/tool", "api": "tool"},
    ]
    return {
        "proxy": {"routes": routes},
        "admin": {"token": TOKEN},
        # nothing listens there: failed exports, a queue that grows
        "exporters": {
            "otlp": {
                "endpoint": f"127.0.0.1:{free_port()}",
                "retry": {"initial_interval": "50ms", "max_interval": "200ms"},
                "shutdown_timeout": "1s",
            }
        },
        "slos": SLOS,
        "budgets": {
            "unpriced_models": "allow",  # counted, not refused
            "budgets": [
                {"name": "per-agent", "scope": "agent", "limit_usd": 5.0, "window": "day"},
                {
                    "name": "spender-cap",
                    "scope": "agent",
                    "agents": ["spender"],
                    "limit_usd": SPENDER_LIMIT_USD,
                    "window": "day",
                },
            ],
        },
        "chaos": {
            "enabled": True,
            "experiments": [
                {
                    "name": "tool-errors",
                    "targets": {"routes": ["search"], "agents": ["a1"]},
                    "faults": [{"type": "error", "status": 503, "probability": 0.5}],
                    "duration": "1h",
                }
            ],
        },
        "rollouts": {
            "evaluate_every": "100ms",
            "rollouts": [
                {
                    "name": "mini",
                    "route": "openai",
                    "baseline": "gpt-4o-mini",
                    "candidate": "gpt-4.1-mini",
                    "steps": [{"weight": 50, "duration": "1h"}, {"weight": 100, "pause": True}],
                }
            ],
        },
    }


def _post(daemon: DaemonProcess, path: str) -> Any:
    request = urllib.request.Request(
        daemon.url("admin", path),
        data=b"{}",
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def traffic(daemon: DaemonProcess, rounds: int = 12) -> None:
    """Calls through the proxy (chat, streamed chat, an unpriced model, tools) and spans."""
    _post(daemon, "/v1/chaos/experiments/tool-errors/start")
    host, port = daemon.addresses["proxy"].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)

    def call(path: str, body: dict[str, Any], agent: str, task: str) -> int:
        conn.request("POST", path, body=json.dumps(body).encode(), headers={
            "Content-Type": "application/json", "Authorization": "Bearer sk-test",
            "X-Agent-Id": agent, "X-Agent-Task-Id": task})  # fmt: skip
        response = conn.getresponse()
        response.read()
        return response.status

    chat = "/openai/v1/chat/completions"
    for index in range(rounds):
        for agent in AGENTS:
            task = f"{agent}-task-{index}"
            messages = [{"role": "user", "content": "hi"}]
            call(chat, {"model": "gpt-4o-mini", "messages": messages}, agent, task)
            call(chat, {"model": "gpt-4o", "messages": messages, "stream": True,
                        "stream_options": {"include_usage": True}}, agent, task)  # fmt: skip
            call("/search/q", {"q": index}, agent, task)
        call(chat, {"model": "no-such-model-x", "messages": [{"role": "user", "content": "x"}]},
             "a2", f"a2-odd-{index}")  # fmt: skip
    conn.close()
    _refused_span(daemon)


def _refused_span(daemon: DaemonProcess) -> None:
    """A span whose trace id is not 16 bytes: refused as invalid, the rest of its request
    taken."""
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for trace_id in (b"short", os.urandom(16)):
        span = scope.spans.add()
        span.trace_id, span.span_id, span.name = trace_id, os.urandom(8), "s"
        span.start_time_unix_nano = span.end_time_unix_nano = time.time_ns()
    post = urllib.request.Request(
        daemon.url("otlp_http", "/v1/traces"),
        data=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    # a request refused whole still counts its spans as refused
    with contextlib.suppress(urllib.error.HTTPError):
        urllib.request.urlopen(post, timeout=10).close()
