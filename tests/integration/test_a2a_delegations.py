"""A2A hand-offs through the real daemon, with the official A2A SDK on both sides: the SDK's
server behind an ``api: a2a`` route, the SDK's client discovering it from its agent card
through the proxy. Each hand-off is one DELEGATION span (caller, callee, task, depth,
status); the depth goes on in baggage and is capped; a blocked agent cannot delegate; chaos
faults look like real A2A failures; the SLOs over delegations move from this traffic alone.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from a2a.client import A2ACardResolver, A2AClientError, ClientConfig, ClientFactory
from a2a.types import GetTaskRequest, Message, Part, Role, SendMessageRequest
from a2a.utils.errors import InternalError

from tests.integration.conftest import forwarding
from tests.support.a2a_agent import A2AAgent
from tests.support.upstream import attrs

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.support.daemon import DaemonProcess
    from tests.support.upstream import RecordingUpstream

CAP = 2


@pytest.fixture
def agent() -> Iterator[A2AAgent]:
    with A2AAgent("researcher") as server:
        yield server


def a2a_config(upstream: RecordingUpstream, agent_url: str, **route: Any) -> dict[str, Any]:
    config = forwarding(upstream)
    config["admin"] = {"endpoint": "127.0.0.1:0", "token": "tok"}
    config["proxy"] = {
        "endpoint": "127.0.0.1:0",
        # the proxy's spans are the events at once (these agents send no spans of their own)
        "correlation": {"hold": "0s"},
        "routes": [
            {
                "name": "researcher",
                "prefix": "/agents/researcher",
                "upstream": agent_url,
                "api": "a2a",
                "max_delegation_depth": CAP,
                **route,
            }
        ],
    }
    config["chaos"] = {"enabled": True, "allow_header_faults": True}
    config["slos"] = [
        {
            "name": "depth",
            "target": 0.5,
            "window": "30d",
            "sli": {"kind": "delegation_depth", "threshold": 1},
        },
        {
            "name": "delegations",
            "target": 0.5,
            "window": "30d",
            "sli": {"kind": "task_success", "match": {"agent.span.kind": "DELEGATION"}},
        },
    ]
    return config


@pytest.fixture
def daemon(
    make_daemon: Callable[..., DaemonProcess], upstream: RecordingUpstream, agent: A2AAgent
) -> DaemonProcess:
    return make_daemon(a2a_config(upstream, agent.url)).start()


def message(text: str) -> SendMessageRequest:
    return SendMessageRequest(
        message=Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[Part(text=text)])
    )


async def client_for(
    daemon: DaemonProcess, http: httpx.AsyncClient, streaming: bool = False
) -> Any:
    """The SDK's client, from the agent card it fetched through the proxy."""
    base = f"http://{daemon.addresses['proxy']}/agents/researcher"
    card = await A2ACardResolver(http, base).get_agent_card()
    # the card's interface was rewritten to the proxy: the client calls through it
    assert card.supported_interfaces[0].url == base + "/"
    return ClientFactory(ClientConfig(httpx_client=http, streaming=streaming)).create(card)


async def send(client: Any, text: str) -> list[Any]:
    return [event async for event in client.send_message(message(text))]


def delegation_spans(upstream: RecordingUpstream) -> list[dict[str, Any]]:
    return [
        {**attrs(span.attributes), "_name": span.name, "_status": span.status.code}
        for _, span in upstream.spans()
        if attrs(span.attributes).get("agent_sre.proxy.route") == "researcher"
    ]


def slos(daemon: DaemonProcess) -> dict[str, tuple[int, int]]:
    with urllib.request.urlopen(daemon.url("admin", "/v1/slos"), timeout=10) as response:
        data = json.load(response)
    return {
        slo["name"]: (slo["overall"]["events_good"], slo["overall"]["events_bad"])
        for slo in data["slos"]
    }


def block(daemon: DaemonProcess, agent_id: str) -> None:
    request = urllib.request.Request(
        daemon.url("admin", f"/v1/agents/{agent_id}/block"),
        method="POST",
        data=b"",
        headers={"Authorization": "Bearer tok"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response)["blocked"] is True


async def test_hand_offs_through_the_proxy_are_delegation_spans(
    daemon: DaemonProcess, upstream: RecordingUpstream, agent: A2AAgent
) -> None:
    headers = {"X-Agent-Id": "planner", "X-Agent-Task-Id": "plan-1"}
    async with httpx.AsyncClient(headers=headers, timeout=20) as http:
        client = await client_for(daemon, http)
        events = await send(client, "hello")
        task = events[-1].task
        task_id = task.id
        assert task.status.state == 3  # TASK_STATE_COMPLETED
        fetched = await client.get_task(GetTaskRequest(id=task_id))
        assert fetched.id == task_id
        streaming = await client_for(daemon, http, streaming=True)
        streamed = await send(streaming, "hello again")
        assert len(streamed) >= 3  # task, status updates, artifact: relayed as they came
    # the callee saw the hand-off one level down, in baggage and in the header
    handoffs = [h for h in agent.seen if "x-agent-delegation-depth" in h]
    assert len(handoffs) == 2
    assert all(h["x-agent-delegation-depth"] == "1" for h in handoffs)
    assert all("agent.delegation.depth=1" in h["baggage"] for h in handoffs)

    assert upstream.wait_for(lambda: len(delegation_spans(upstream)) >= 5)
    spans = delegation_spans(upstream)
    delegations = [s for s in spans if s.get("agent.span.kind") == "DELEGATION"]
    assert len(delegations) == 2  # the two hand-offs; the card and tasks/get are not
    for span in delegations:
        assert span["_name"] == "invoke_agent researcher"
        assert span["agent.id"] == "planner"
        assert span["agent.task.id"] == "plan-1"
        assert span["agent.delegation.caller"] == "planner"
        assert span["agent.delegation.callee"] == "researcher"
        assert span["agent.delegation.depth"] == 1
        assert span["agent.delegation.task.id"]
        assert span["agent_sre.decided_by"] == "upstream"
        assert span["_status"] != 2  # not ERROR
    assert {s["rpc.method"] for s in delegations} == {"SendMessage", "SendStreamingMessage"}
    assert task_id in {s["agent.delegation.task.id"] for s in delegations}
    get = next(s for s in spans if s.get("rpc.method") == "GetTask")
    assert "agent.span.kind" not in get
    assert get["agent.delegation.task.id"] == task_id
    # the SLOs over delegations counted both hand-offs, from the proxy's spans alone
    assert slos(daemon)["depth"] == (2, 0)
    assert slos(daemon)["delegations"] == (2, 0)


async def test_a_failed_task_fails_the_delegation(
    daemon: DaemonProcess, upstream: RecordingUpstream
) -> None:
    async with httpx.AsyncClient(headers={"X-Agent-Id": "planner"}, timeout=20) as http:
        client = await client_for(daemon, http)
        events = await send(client, "fail")
        assert events[-1].task.status.state == 4  # TASK_STATE_FAILED
    assert upstream.wait_for(lambda: len(delegation_spans(upstream)) >= 2)
    (span,) = [s for s in delegation_spans(upstream) if s.get("agent.span.kind") == "DELEGATION"]
    assert span["error.type"] == "task_failed"
    assert span["a2a.task.state"] == "TASK_STATE_FAILED"
    assert slos(daemon)["delegations"] == (0, 1)


async def test_a_hand_off_past_the_depth_cap_is_refused(
    daemon: DaemonProcess, upstream: RecordingUpstream, agent: A2AAgent
) -> None:
    # a caller already at the cap (it was handed work at depth 2) hands off at depth 3
    headers = {"X-Agent-Id": "looper", "baggage": f"agent.id=looper,agent.delegation.depth={CAP}"}
    async with httpx.AsyncClient(headers=headers, timeout=20) as http:
        client = await client_for(daemon, http)
        seen = len(agent.seen)
        with pytest.raises(A2AClientError) as refused:
            await send(client, "hello")
        assert "-32090" in str(refused.value)
        assert "delegation depth 3" in str(refused.value)
        assert len(agent.seen) == seen  # never forwarded
        raw = await http.post(
            f"http://{daemon.addresses['proxy']}/agents/researcher/",
            json={"jsonrpc": "2.0", "id": 7, "method": "message/send", "params": {}},
        )
    # HTTP 200 as A2A servers answer errors: the SDK reads the code and retries nothing
    assert raw.status_code == 200
    assert raw.headers["x-agent-sre-error"] == "delegation_too_deep"
    assert raw.headers["x-should-retry"] == "false"
    body = raw.json()
    assert body["id"] == 7 and body["jsonrpc"] == "2.0"
    assert body["error"]["code"] == -32090
    assert body["error"]["data"] == {"type": "delegation_too_deep"}
    assert upstream.wait_for(
        lambda: (
            sum(s.get("error.type") == "delegation_too_deep" for s in delegation_spans(upstream))
            == 2
        )
    )
    refused_span = next(
        s for s in delegation_spans(upstream) if s.get("error.type") == "delegation_too_deep"
    )
    assert refused_span["agent.span.kind"] == "DELEGATION"
    assert refused_span["agent.delegation.depth"] == CAP + 1
    assert refused_span["agent_sre.decided_by"] == "refusal"
    # both SLOs judged the refused hand-offs from the proxy's spans: too deep, and failed
    assert slos(daemon)["depth"] == (0, 2)
    assert slos(daemon)["delegations"] == (0, 2)


@pytest.mark.parametrize("depth", ["NaN", "-1", "1e309", "garbage", "1.5", "99999", ""])
async def test_a_depth_that_is_not_a_depth_is_refused(daemon: DaemonProcess, depth: str) -> None:
    async with httpx.AsyncClient(timeout=20) as http:
        for headers in (
            {"X-Agent-Delegation-Depth": depth},
            {"baggage": f"agent.delegation.depth={depth}"},
        ):
            raw = await http.post(
                f"http://{daemon.addresses['proxy']}/agents/researcher/",
                json={"jsonrpc": "2.0", "id": "a", "method": "SendMessage", "params": {}},
                headers=headers,
            )
            assert raw.status_code == 200
            body = raw.json()
            assert body["error"]["code"] == -32600, (headers, body)
            assert "delegation" in body["error"]["message"].lower()
            assert body["id"] == "a"


async def test_a_blocked_agent_cannot_delegate(
    daemon: DaemonProcess, upstream: RecordingUpstream, agent: A2AAgent
) -> None:
    async with httpx.AsyncClient(headers={"X-Agent-Id": "rogue"}, timeout=20) as http:
        client = await client_for(daemon, http)
        block(daemon, "rogue")  # the kill switch: every call of the agent, its card too
        seen = len(agent.seen)
        with pytest.raises(A2AClientError) as refused:
            await send(client, "hello")
        assert "-32091" in str(refused.value)
        assert len(agent.seen) == seen
    assert upstream.wait_for(
        lambda: any(s.get("error.type") == "agent_blocked" for s in delegation_spans(upstream))
    )


async def test_a_hand_off_holds_the_callers_budget_while_it_runs(
    make_daemon: Callable[..., DaemonProcess], upstream: RecordingUpstream, agent: A2AAgent
) -> None:
    """A route's ``delegation_reserve_usd`` is held from the caller's budgets while the
    hand-off runs and given back when it ends; one the budget cannot cover is refused."""
    config = a2a_config(upstream, agent.url)
    route = config["proxy"]["routes"][0]
    route["delegation_reserve_usd"] = 0.004
    costly = {**route, "name": "costly", "prefix": "/agents/costly"}
    costly["delegation_reserve_usd"] = 0.02
    config["proxy"]["routes"].append(costly)
    config["budgets"] = {
        "budgets": [{"name": "daily", "scope": "agent", "limit_usd": 0.01, "window": "day"}]
    }
    daemon = make_daemon(config).start()
    proxy = f"http://{daemon.addresses['proxy']}"
    handoff = {
        "jsonrpc": "2.0",
        "id": "h",
        "method": "message/send",
        "params": {
            "message": {"messageId": "m", "role": "user", "parts": [{"kind": "text", "text": "x"}]}
        },
    }
    async with httpx.AsyncClient(headers={"X-Agent-Id": "spender"}, timeout=20) as http:
        ok = await http.post(f"{proxy}/agents/researcher/", json=handoff)
        assert ok.status_code == 200 and "result" in ok.json(), ok.text
        refused = await http.post(f"{proxy}/agents/costly/", json=handoff)
    assert refused.status_code == 200
    assert refused.headers["x-agent-sre-error"] == "budget_exceeded"
    body = refused.json()
    assert body["id"] == "h" and body["error"]["code"] == -32091
    assert "daily" in body["error"]["message"] and "0.020000" in body["error"]["message"]
    with urllib.request.urlopen(daemon.url("admin", "/v1/budgets"), timeout=10) as response:
        (budget,) = json.load(response)["budgets"]
    # the hold was given back: a hand-off books nothing to the caller itself
    assert budget["subjects"] in ([], [{"subject": "spender", "spent_usd": 0.0,
                                        "remaining_usd": 0.01}])  # fmt: skip


async def test_chaos_faults_look_like_real_a2a_failures(
    daemon: DaemonProcess, upstream: RecordingUpstream
) -> None:
    async with httpx.AsyncClient(headers={"X-Agent-Id": "planner"}, timeout=20) as http:
        client = await client_for(daemon, http)
        streaming = await client_for(daemon, http, streaming=True)
        # a JSON-RPC error from the agent
        http.headers["x-agent-sre-fault"] = "tool_error;message=agent crashed"
        with pytest.raises(InternalError) as rpc_error:  # the SDK's class for -32603
            await send(client, "hello")
        assert "agent crashed" in str(rpc_error.value)
        # an HTTP 503 in front of it
        http.headers["x-agent-sre-fault"] = "error;status=503"
        with pytest.raises(A2AClientError) as unavailable:
            await send(client, "hello")
        assert "503" in str(unavailable.value)
        # a stream cut after its first event
        http.headers["x-agent-sre-fault"] = "truncated_stream;after_events=1"
        got: list[Any] = []
        with pytest.raises(A2AClientError):
            async for event in streaming.send_message(message("hello")):
                got.append(event)
        assert len(got) == 1  # sse-starlette's CRLF events, cut after the first
    assert upstream.wait_for(
        lambda: (
            {
                s.get("agent_sre.chaos.fault")
                for s in delegation_spans(upstream)
                if s.get("agent.span.kind") == "DELEGATION"
            }
            >= {"tool_error", "error", "truncated_stream"}
        )
    )
    faulted = [s for s in delegation_spans(upstream) if s.get("agent_sre.chaos.fault")]
    assert all(s["agent_sre.decided_by"] == "chaos" for s in faulted)
    assert all(s["_status"] == 2 for s in faulted)


async def test_the_spend_of_a_delegated_task_rolls_up_to_the_delegating_task(
    make_daemon: Callable[..., DaemonProcess],
    upstream: RecordingUpstream,
    agent: A2AAgent,
    provider_url: str,
) -> None:
    """The rule: by trace. The proxy hands the callee its DELEGATION span as ``traceparent``;
    the callee's own LLM call through the proxy continues that trace, so the delegating
    task's ``cost_per_task`` (the spend of its trace) includes the delegated task's."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    config = a2a_config(upstream, agent.url)
    config["proxy"]["routes"].append(
        {"name": "openai", "prefix": "/openai", "upstream": provider_url, "api": "openai"}
    )
    config["slos"] = [
        {
            "name": "task-cost",
            "target": 0.9,
            "window": "30d",
            # any spend at all is over it: the task is judged bad only if it saw the spend
            "sli": {"kind": "cost_per_task", "threshold": 1e-9},
        }
    ]
    daemon = make_daemon(config).start()
    trace_id, parent = 0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7
    headers = {"X-Agent-Id": "planner", "traceparent": f"00-{trace_id:032x}-{parent:016x}-01"}
    llm = f"http://{daemon.addresses['proxy']}/openai/v1/chat/completions"
    async with httpx.AsyncClient(headers=headers, timeout=20) as http:
        client = await client_for(daemon, http)
        await send(client, f"llm:{llm}")

    def callee_llm_span() -> list[Any]:
        return [
            span
            for _, span in upstream.spans()
            if attrs(span.attributes).get("agent_sre.proxy.route") == "openai"
        ]

    assert upstream.wait_for(lambda: bool(callee_llm_span()))
    (llm_span,) = callee_llm_span()
    assert llm_span.trace_id == trace_id.to_bytes(16, "big")  # the delegating task's trace
    assert attrs(llm_span.attributes)["agent.id"] == "researcher"  # booked to the callee
    assert attrs(llm_span.attributes)["agent_sre.cost_usd"] > 0

    # the delegating task ends: its span, in its trace, is judged on the trace's spend
    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(
            OTLPSpanExporter(endpoint=f"http://{daemon.addresses['otlp_grpc']}", insecure=True)
        )
    )
    context = set_span_in_context(
        NonRecordingSpan(SpanContext(trace_id, parent, is_remote=True, trace_flags=TraceFlags(1)))
    )
    provider.get_tracer("planner").start_span(
        "invoke_agent planner",
        context=context,
        attributes={"agent.span.kind": "AGENT_TASK", "agent.id": "planner"},
    ).end()
    provider.shutdown()
    assert upstream.wait_for(
        lambda: any(s.name == "invoke_agent planner" for _, s in upstream.spans())
    )
    assert slos(daemon)["task-cost"] == (0, 1)
