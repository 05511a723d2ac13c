"""One tool call, one event: an agent instrumented with the OpenTelemetry SDK emits its own
``execute_tool`` span of each tool call it routes through the proxy (a plain HTTP tool and an
MCP server), with and without ``traceparent``; the daemon counts each call once (in
``agent_sre_spans_total`` and in the SLO over tool calls), and the upstream receives both
spans of each call, the proxy's marked as the gateway's view."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from tests.integration.conftest import forwarding
from tests.support.metrics import scrape
from tests.support.stand_in import ThreadedProvider
from tests.support.upstream import RecordingUpstream, attrs

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.fakes.provider import FakeProvider
    from tests.support.daemon import DaemonProcess

CALLS = 2
"""Tool calls of each kind (HTTP tool, MCP) per agent."""
_call_ids = itertools.count(1)


@pytest.fixture
def stand_in() -> Iterator[FakeProvider]:
    with ThreadedProvider() as fake:
        yield fake


def tool_config(upstream: RecordingUpstream, tools_url: str) -> dict[str, Any]:
    config = forwarding(upstream)
    config["proxy"] = {
        "endpoint": "127.0.0.1:0",
        "routes": [
            {"name": "search", "prefix": "/search", "upstream": f"{tools_url}/tool", "api": "tool"},
            {"name": "mcp", "prefix": "/mcp", "upstream": f"{tools_url}/mcp", "api": "mcp"},
        ],
    }
    config["slos"] = [
        {
            "name": "tools",
            "target": 0.99,
            "window": "30d",
            "sli": {"kind": "tool_call_success"},
            "labels": ["agent.id"],
        }
    ]
    return config


def agent_provider(daemon: DaemonProcess, agent_id: str, batch: bool = True) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create({"service.name": "agent", "agent.id": agent_id})
    )
    exporter = OTLPSpanExporter(endpoint=f"http://{daemon.addresses['otlp_grpc']}", insecure=True)
    if batch:  # as users run it: spans leave in batches, well after the proxy's span
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@contextlib.contextmanager
def propagating(provider: TracerProvider, propagate: bool) -> Iterator[None]:
    """With ``propagate``, the HTTP client sends ``traceparent`` (the httpx instrumentation)."""
    if not propagate:
        yield
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    instrumentor = HTTPXClientInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield
    finally:
        instrumentor.uninstrument()


def mcp_call(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": next(_call_ids),
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }


def run_agent(daemon: DaemonProcess, agent_id: str, propagate: bool) -> None:
    """An agent of a few lines: per task, an HTTP tool call and an MCP tool call, each inside
    its ``execute_tool`` span (GenAI conventions; the MCP one with ``mcp.method.name`` as MCP
    instrumentations write it). Without ``traceparent`` the agent names itself to the proxy."""
    proxy = f"http://{daemon.addresses['proxy']}"
    provider = agent_provider(daemon, agent_id)
    tracer = provider.get_tracer("the-agent")
    headers = {} if propagate else {"X-Agent-Id": agent_id}
    try:
        with propagating(provider, propagate), httpx.Client(headers=headers) as client:
            for _ in range(CALLS):
                with tracer.start_as_current_span(
                    "invoke_agent support", attributes={"gen_ai.operation.name": "invoke_agent"}
                ):
                    with tracer.start_as_current_span(
                        "execute_tool search",
                        attributes={
                            "gen_ai.operation.name": "execute_tool",
                            "gen_ai.tool.name": "search",
                            "gen_ai.tool.call.id": f"call_{next(_call_ids)}",
                        },
                    ):
                        reply = client.post(f"{proxy}/search/query", json={"q": "weather"})
                        assert reply.status_code == 200
                    with tracer.start_as_current_span(
                        "tools/call get_weather",
                        attributes={
                            "gen_ai.operation.name": "execute_tool",
                            "gen_ai.tool.name": "get_weather",
                            "gen_ai.tool.call.id": f"call_{next(_call_ids)}",
                            "mcp.method.name": "tools/call",
                        },
                    ):
                        answer = client.post(
                            f"{proxy}/mcp", json=mcp_call("get_weather", {"city": "Oslo"})
                        )
                        assert answer.json()["result"]["isError"] is False
    finally:
        provider.shutdown()  # flushes the batch


def slo_events(metrics: dict[Any, float], slo: str) -> dict[str, dict[str, float]]:
    """{agent.id: {good, bad}} of an SLO labelled by agent.id."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: {"good": 0.0, "bad": 0.0})
    for (name, labels), value in metrics.items():
        label = dict(labels)
        if name == "agent_sre_slo_events_total" and label.get("slo") == slo:
            out[label.get("agent_id", "")][label["result"]] += value
    return out


def role(span: Any) -> str | None:
    value = attrs(span.attributes).get("agent_sre.role")
    return value if isinstance(value, str) else None


def test_each_tool_call_counts_once_with_and_without_traceparent(
    make_daemon: Callable[..., DaemonProcess],
    upstream: RecordingUpstream,
    stand_in: FakeProvider,
) -> None:
    daemon = make_daemon(tool_config(upstream, stand_in.url)).start()
    agents = {"tools-fingerprint": False, "tools-traced": True}
    for agent_id, propagate in agents.items():
        run_agent(daemon, agent_id, propagate)
    calls = 2 * CALLS * len(agents)
    assert stand_in.calls == calls

    # Every proxy span was claimed by the agent's span of its call (none waits for the hold).
    metrics = scrape(daemon.url("metrics", "/metrics"))
    assert metrics[("agent_sre_tool_calls_held", ())] == 0, daemon.log()
    assert metrics[("agent_sre_spans_total", (("kind", "TOOL_CALL"),))] == calls
    assert metrics[("agent_sre_spans_second_view_total", (("role", "gateway"),))] == calls
    linked = {
        dict(labels)["by"]: value
        for (name, labels), value in metrics.items()
        if name == "agent_sre_tool_calls_linked_total"
    }
    assert linked == {"fingerprint": 2 * CALLS, "trace": 2 * CALLS}
    tools = slo_events(metrics, "tools")
    for agent_id in agents:
        assert tools[agent_id] == {"good": 2 * CALLS, "bad": 0}, agent_id
    assert sum(e["good"] + e["bad"] for e in tools.values()) == calls
    # LLM linking is not involved
    assert not any(v for (n, _), v in metrics.items() if n == "agent_sre_llm_calls_linked_total")

    # Upstream: both spans of every call; the proxy's is the gateway view naming the agent's
    # span, in the agent's trace; the agent's span carries the proxy's facts.
    def forwarded_all() -> bool:
        return sum(1 for _, s in upstream.spans() if role(s) == "gateway") == calls

    assert upstream.wait_for(forwarded_all), daemon.log()
    tool_spans = {
        s.span_id: (attrs(r.attributes), s)
        for r, s in upstream.spans()
        if attrs(s.attributes).get("agent.span.kind") == "TOOL_CALL"
    }
    gateways = [(a, s) for a, s in tool_spans.values() if role(s) == "gateway"]
    events = [(a, s) for a, s in tool_spans.values() if role(s) is None]
    assert len(gateways) == len(events) == calls
    names = defaultdict(int)
    for _, gateway in gateways:
        marks = attrs(gateway.attributes)
        event_resource, event = tool_spans[bytes.fromhex(marks["agent_sre.event.span_id"])]
        facts = attrs(event.attributes)
        agent_id = event_resource["agent.id"]
        assert marks["agent_sre.proxy.route"] in ("search", "mcp")
        assert marks["gen_ai.tool.name"] == facts["gen_ai.tool.name"]
        assert marks["http.response.status_code"] == 200  # the gateway view keeps its facts
        assert marks["agent.id"] == agent_id
        assert marks["agent_sre.linked_by"] == ("trace" if agents[agent_id] else "fingerprint")
        assert gateway.trace_id == event.trace_id  # in the agent's trace
        assert facts["agent_sre.gateway.span_id"] == gateway.span_id.hex()
        assert facts["agent_sre.proxy.route"] == marks["agent_sre.proxy.route"]
        if marks["agent_sre.proxy.route"] == "mcp":
            assert marks["mcp.method.name"] == "tools/call"
        names[marks["gen_ai.tool.name"]] += 1
    assert names == {"search": calls // 2, "get_weather": calls // 2}


def test_an_agent_span_first_a_failed_call_and_a_call_nobody_else_describes(
    make_daemon: Callable[..., DaemonProcess],
    upstream: RecordingUpstream,
    stand_in: FakeProvider,
) -> None:
    """An agent's tool span reaching the daemon before the proxy's span of the call stays
    the event; a failed MCP tool call is one bad event; a proxied tool call no agent span
    describes is the event itself once the hold ends."""
    config = tool_config(upstream, stand_in.url)
    config["proxy"]["correlation"] = {"hold": "2s"}
    daemon = make_daemon(config).start()
    proxy = f"http://{daemon.addresses['proxy']}"

    # first: the span is exported (it ends in the future, around the call) before the call
    provider = agent_provider(daemon, "tools-first", batch=False)
    tracer = provider.get_tracer("hand-made")
    first = tracer.start_span(
        "execute_tool get_weather",
        attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather"},
    )
    first.end(end_time=time.time_ns() + 5_000_000_000)
    reply = httpx.post(
        f"{proxy}/mcp",
        json=mcp_call("get_weather", {}),
        headers={"X-Agent-Id": "tools-first"},
    )
    assert reply.status_code == 200

    # failed: the MCP server answers isError; the agent marks its span failed
    failing = agent_provider(daemon, "tools-failing")
    with failing.get_tracer("the-agent").start_as_current_span(
        "execute_tool failing",
        attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "failing"},
    ) as span:
        answer = httpx.post(
            f"{proxy}/mcp", json=mcp_call("failing", {}), headers={"X-Agent-Id": "tools-failing"}
        )
        assert answer.json()["result"]["isError"] is True
        span.set_status(Status(StatusCode.ERROR, "tool failed"))
    failing.shutdown()

    # alone: nobody else describes it
    alone = httpx.post(f"{proxy}/search/x", json={}, headers={"X-Agent-Id": "tools-alone"})
    assert alone.status_code == 200
    provider.shutdown()

    def settled() -> bool:
        return len(upstream.spans()) == 5

    assert upstream.wait_for(settled), daemon.log()
    metrics = scrape(daemon.url("metrics", "/metrics"))
    assert metrics[("agent_sre_spans_total", (("kind", "TOOL_CALL"),))] == 3
    tools = slo_events(metrics, "tools")
    assert tools["tools-first"] == {"good": 1, "bad": 0}
    assert tools["tools-failing"] == {"good": 0, "bad": 1}
    assert tools["tools-alone"] == {"good": 1, "bad": 0}
    first_links = (("by", "fingerprint"), ("first", "agent"))
    assert metrics[("agent_sre_tool_calls_linked_total", first_links)] == 1
    proxy_links = (("by", "fingerprint"), ("first", "proxy"))
    assert metrics[("agent_sre_tool_calls_linked_total", proxy_links)] == 1
    released = (("reason", "hold_expired"),)
    assert metrics[("agent_sre_tool_calls_unlinked_total", released)] == 1
    proxy_spans = {  # the proxy's spans are CLIENT spans; the agents' here are INTERNAL
        attrs(s.attributes)["agent.id"]: (role(s), attrs(s.attributes))
        for _, s in upstream.spans()
        if s.kind == Span.SPAN_KIND_CLIENT
    }
    assert proxy_spans["tools-alone"][0] is None  # the event itself
    assert proxy_spans["tools-failing"][0] == "gateway"
    assert proxy_spans["tools-failing"][1]["error.type"] == "tool_error"
    assert proxy_spans["tools-first"][0] == "gateway"
