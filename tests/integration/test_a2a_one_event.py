"""One hand-off, one event: an agent instrumented with the OpenTelemetry SDK writes its own
DELEGATION span around each A2A hand-off it sends through the proxy (the official A2A SDK's
client, the SDK's agent behind an ``api: a2a`` route), with ``traceparent`` and without
(naming itself in ``X-Agent-Id``). The daemon counts each hand-off once — in
``agent_sre_spans_total`` and in the SLOs over delegations — the agent's span takes the
proxy's facts (the depth included), and the proxy's span is forwarded as the gateway view.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import httpx
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.types import Message, Part, Role, SendMessageRequest

from tests.integration.conftest import forwarding
from tests.integration.test_one_tool_call_one_event import agent_provider, propagating, role
from tests.support.a2a_agent import A2AAgent
from tests.support.metrics import scrape
from tests.support.upstream import attrs

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.support.daemon import DaemonProcess
    from tests.support.upstream import RecordingUpstream

HANDOFFS = 2
"""Hand-offs per agent."""


async def run_agent(daemon: DaemonProcess, agent_id: str, propagate: bool) -> None:
    base = f"http://{daemon.addresses['proxy']}/agents/researcher"
    provider = agent_provider(daemon, agent_id)
    tracer = provider.get_tracer("the-agent")
    headers = {} if propagate else {"X-Agent-Id": agent_id}
    try:
        with propagating(provider, propagate):
            async with httpx.AsyncClient(headers=headers, timeout=20) as http:
                card = await A2ACardResolver(http, base).get_agent_card()
                config = ClientConfig(httpx_client=http, streaming=False)
                client = ClientFactory(config).create(card)
                for _ in range(HANDOFFS):
                    with tracer.start_as_current_span(
                        "invoke_agent researcher",
                        attributes={
                            "agent.span.kind": "DELEGATION",
                            "agent.delegation.callee": "researcher",
                        },
                    ):
                        request = SendMessageRequest(
                            message=Message(
                                message_id=str(uuid.uuid4()),
                                role=Role.ROLE_USER,
                                parts=[Part(text="hello")],
                            )
                        )
                        events = [e async for e in client.send_message(request)]
                        assert events[-1].task.status.state == 3  # completed
    finally:
        provider.shutdown()  # flushes the batch


def slo_total(metrics: dict[Any, float], slo: str) -> tuple[float, float]:
    good = bad = 0.0
    for (name, labels), value in metrics.items():
        label = dict(labels)
        if name == "agent_sre_slo_events_total" and label.get("slo") == slo:
            if label["result"] == "good":
                good += value
            else:
                bad += value
    return good, bad


async def test_each_hand_off_counts_once_with_and_without_traceparent(
    make_daemon: Callable[..., DaemonProcess], upstream: RecordingUpstream
) -> None:
    with A2AAgent("researcher") as agent:
        config = forwarding(upstream)
        config["proxy"] = {
            "endpoint": "127.0.0.1:0",
            "routes": [
                {
                    "name": "researcher",
                    "prefix": "/agents/researcher",
                    "upstream": agent.url,
                    "api": "a2a",
                }
            ],
        }
        config["slos"] = [
            {
                "name": "delegations",
                "target": 0.9,
                "window": "30d",
                "sli": {"kind": "task_success", "match": {"agent.span.kind": "DELEGATION"}},
            },
            {
                "name": "depth",
                "target": 0.9,
                "window": "30d",
                "sli": {"kind": "delegation_depth", "threshold": 1},
            },
        ]
        daemon = make_daemon(config).start()
        agents = {"a2a-fingerprint": False, "a2a-traced": True}
        for agent_id, propagate in agents.items():
            await run_agent(daemon, agent_id, propagate)
    handoffs = HANDOFFS * len(agents)

    metrics = scrape(daemon.url("metrics", "/metrics"))
    assert metrics[("agent_sre_delegations_held", ())] == 0, daemon.log()
    assert metrics[("agent_sre_spans_total", (("kind", "DELEGATION"),))] == handoffs
    linked = {
        dict(labels)["by"]: value
        for (name, labels), value in metrics.items()
        if name == "agent_sre_delegations_linked_total"
    }
    assert linked == {"fingerprint": HANDOFFS, "trace": HANDOFFS}
    # each hand-off once; the agent's span (the event) took the proxy's depth
    assert slo_total(metrics, "delegations") == (handoffs, 0)
    assert slo_total(metrics, "depth") == (handoffs, 0)
    # tool-call linking is not involved
    assert not any(v for (n, _), v in metrics.items() if n == "agent_sre_tool_calls_linked_total")

    def forwarded_all() -> bool:
        return sum(1 for _, s in upstream.spans() if role(s) == "gateway") == handoffs

    assert upstream.wait_for(forwarded_all), daemon.log()
    spans = {
        s.span_id: s
        for _, s in upstream.spans()
        if attrs(s.attributes).get("agent.span.kind") == "DELEGATION"
    }
    gateways = [s for s in spans.values() if role(s) == "gateway"]
    events = [s for s in spans.values() if role(s) is None]
    assert len(gateways) == len(events) == handoffs
    for gateway in gateways:
        marks = attrs(gateway.attributes)
        event = spans[bytes.fromhex(marks["agent_sre.event.span_id"])]
        facts = attrs(event.attributes)
        assert gateway.trace_id == event.trace_id
        assert facts["agent_sre.gateway.span_id"] == gateway.span_id.hex()
        assert facts["agent.delegation.depth"] == marks["agent.delegation.depth"] == 1
        assert facts["agent.delegation.task.id"] == marks["agent.delegation.task.id"]
        assert facts["agent_sre.proxy.route"] == "researcher"
