"""One LLM call, one event, in the span pass: what the proxy's span and the agent's span carry
once linked, whichever came first (the agent's span is remembered cheaply and read later)."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agent_sre.config import Config
from agent_sre.tracing import conventions as c
from agent_sre_daemon.clock import ManualClock
from agent_sre_daemon.ingest.correlation import CallCorrelation
from tests.support.context import node_context
from tests.support.spans import set_value

if TYPE_CHECKING:
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    from agent_sre_daemon.component import NodeContext

NOW = 1_700_000_000.0
START_NS = int(NOW * 1e9) - 3_000_000_000
_ids = itertools.count(1)


def _request(
    attributes: dict[str, object], resource: dict[str, object], start_ns: int, end_ns: int
) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for key, value in resource.items():
        set_value(resource_spans.resource.attributes.add(key=key), value)
    span = resource_spans.scope_spans.add().spans.add()
    span.trace_id = next(_ids).to_bytes(16, "big")
    span.span_id = next(_ids).to_bytes(8, "big")
    span.name = "chat"
    span.start_time_unix_nano = start_ns
    span.end_time_unix_nano = end_ns
    for key, value in attributes.items():
        set_value(span.attributes.add(key=key), value)
    return request


def agent_call(
    model: str = "gpt-4o-mini", resource: dict[str, object] | None = None, **extra: object
) -> ExportTraceServiceRequest:
    """An agent's own span of a call (OpenTelemetry GenAI conventions, no cost)."""
    attributes: dict[str, object] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 300,
        **extra,
    }
    return _request(attributes, resource or {}, START_NS, START_NS + 2_000_000_000)


def proxy_call(model: str = "gpt-4o-mini") -> ExportTraceServiceRequest:
    """The proxy's span of the same call (its own trace: linked by fingerprint)."""
    attributes: dict[str, object] = {
        "agent.span.kind": "LLM_INFERENCE",
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 300,
        "agent_sre.proxy.route": "openai",
        "agent_sre.cost_usd": 0.5,
    }
    start = START_NS + 500_000_000
    return _request(attributes, {}, start, start + 1_000_000_000)


def attrs(request: ExportTraceServiceRequest) -> dict[str, object]:
    span = only(request)
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in span.attributes}


def only(request: ExportTraceServiceRequest) -> Span:
    span: Span = request.resource_spans[0].scope_spans[0].spans[0]
    return span


@pytest.fixture
async def node() -> tuple[NodeContext, CallCorrelation, list[ExportTraceServiceRequest]]:
    context = node_context(Config())
    exported: list[ExportTraceServiceRequest] = []
    context.pipeline.export_call = exported.append  # type: ignore[method-assign]
    correlation = CallCorrelation(context)
    await correlation.start()
    return context, correlation, exported


Node = tuple["NodeContext", CallCorrelation, list[ExportTraceServiceRequest]]


def linked(context: NodeContext, first: str) -> float:
    value = context.registry.get_sample_value(
        "agent_sre_llm_calls_linked_total", {"by": "fingerprint", "first": first}
    )
    return value or 0.0


async def test_an_agent_span_before_the_proxy_record_stays_the_event(node: Node) -> None:
    context, correlation, exported = node
    agent = agent_call(resource={"agent.id": "planner"}, **{"agent.task.id": "t-1"})
    context.pipeline.processor.process(agent, NOW)
    assert "agent_sre.cost_usd" in attrs(agent)  # priced: the agent's span carries the cost
    proxy = proxy_call()
    correlation.offer(proxy)
    assert exported == [proxy]  # linked at once: not held
    marks = attrs(proxy)
    assert marks["agent_sre.role"] == "gateway"
    assert marks["agent_sre.linked_by"] == "fingerprint"
    assert marks["agent_sre.event.span_id"] == only(agent).span_id.hex()
    # the cost counts once, on the agent's span; the caller's identity, resource's included
    assert "agent_sre.cost_usd" not in marks
    assert marks["agent_sre.gateway.cost_usd"] == 0.5
    assert (marks["agent.id"], marks["agent.task.id"]) == ("planner", "t-1")
    assert only(proxy).trace_id == only(agent).trace_id  # joined the agent's trace
    assert linked(context, "agent") == 1
    assert correlation.correlator.held_count == 0


async def test_an_unpriced_agent_span_leaves_the_proxy_its_cost(node: Node) -> None:
    context, correlation, exported = node
    agent = agent_call(model="no-such-model")
    context.pipeline.processor.process(agent, NOW)
    assert "agent_sre.cost_usd" not in attrs(agent)
    proxy = proxy_call(model="no-such-model")
    correlation.offer(proxy)
    marks = attrs(proxy)
    assert marks["agent_sre.role"] == "gateway"
    assert marks["agent_sre.cost_usd"] == 0.5  # the proxy's record carries the spend
    assert "agent_sre.gateway.cost_usd" not in marks
    assert linked(context, "agent") == 1


async def test_a_proxy_record_before_the_agent_span_is_claimed(node: Node) -> None:
    context, correlation, exported = node
    proxy = proxy_call()
    correlation.offer(proxy)
    assert exported == [] and correlation.correlator.held_count == 1
    agent = agent_call(**{"agent.id": "planner"})
    result = context.pipeline.processor.process(agent, NOW)
    (released,) = exported  # held as the request itself: released marked, never re-read
    assert released is proxy
    taken = attrs(agent)
    assert taken["agent_sre.proxy.route"] == "openai"
    assert taken["agent_sre.cost_usd"] == 0.5  # the proxy's price, not priced again
    assert taken["agent_sre.gateway.span_id"] == only(proxy).span_id.hex()
    marks = attrs(proxy)
    assert marks["agent_sre.role"] == "gateway"
    assert marks["agent_sre.gateway.cost_usd"] == 0.5
    assert marks["agent.id"] == "planner"
    assert sum(result.by_kind.values()) == 1
    assert linked(context, "proxy") == 1


@pytest.mark.parametrize("first", ["agent", "proxy"])
async def test_the_proxy_handing_its_attributes_over_links_as_reading_them_back_does(
    first: str,
) -> None:
    """The proxy gives the attributes it wrote, so they are not decoded from its span again:
    the same link, the same marks, whichever arrives first."""
    outcomes = []
    for handed in (False, True):
        context = node_context(Config())
        exported: list[ExportTraceServiceRequest] = []
        context.pipeline.export_call = exported.append  # type: ignore[method-assign]
        correlation = CallCorrelation(context)
        await correlation.start()
        agent = agent_call(**{"agent.id": "planner"})
        proxy = proxy_call()
        given = attrs(proxy) if handed else None
        if first == "agent":
            context.pipeline.processor.process(agent, NOW)
            correlation.offer(proxy, given)  # type: ignore[arg-type]
        else:
            correlation.offer(proxy, given)  # type: ignore[arg-type]
            assert correlation.correlator.held_count == 1
            context.pipeline.processor.process(agent, NOW)
        (out,) = exported
        outcomes.append((unnamed(attrs(out)), unnamed(attrs(agent)), linked(context, first)))
    assert outcomes[0] == outcomes[1]
    assert outcomes[1][0]["agent_sre.role"] == "gateway" and outcomes[1][2] == 1


def unnamed(marks: dict[str, object]) -> dict[str, object]:
    """Without the ids (each run makes new spans)."""
    return {k: v for k, v in marks.items() if not k.endswith(("span_id", "trace_id"))}


async def test_the_held_gauge_reads_the_count_when_scraped(node: Node) -> None:
    context, correlation, exported = node

    def held() -> float | None:
        return context.registry.get_sample_value("agent_sre_llm_calls_held")

    correlation.offer(proxy_call())
    correlation.offer(proxy_call(model="gpt-4o"))
    assert held() == 2
    context.pipeline.processor.process(agent_call(), NOW)
    assert held() == 1 and len(exported) == 1


async def test_a_span_of_another_call_links_to_nothing(node: Node) -> None:
    context, correlation, exported = node
    correlation.offer(proxy_call())
    other = agent_call(**{"gen_ai.usage.output_tokens": 299})
    context.pipeline.processor.process(other, NOW)
    later = agent_call(model="gpt-4o")
    context.pipeline.processor.process(later, NOW)
    assert exported == [] and correlation.correlator.held_count == 1
    assert "agent_sre.role" not in attrs(other)
    assert linked(context, "proxy") == linked(context, "agent") == 0
    await correlation.stop(0.0)
    assert len(exported) == 1  # released as the event, never lost


# -- tool calls ---------------------------------------------------------------------------

TOOL_ROUTES = {
    "routes": [
        {"name": "search", "prefix": "/search", "upstream": "http://127.0.0.1:9", "api": "tool"},
        {"name": "mcp", "prefix": "/mcp", "upstream": "http://127.0.0.1:9", "api": "mcp"},
    ]
}


def agent_tool(tool: str = "search", **extra: object) -> ExportTraceServiceRequest:
    """An agent's own ``execute_tool`` span (GenAI conventions)."""
    attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool, **extra}
    return _request(attributes, {"agent.id": "planner"}, START_NS, START_NS + 2_000_000_000)


def proxy_tool(tool: str = "search", route: str = "search") -> ExportTraceServiceRequest:
    """The proxy's span of the same tool call (its own trace: linked by fingerprint)."""
    attributes: dict[str, object] = {
        "agent.span.kind": "TOOL_CALL",
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": tool,
        "agent_sre.proxy.route": route,
        "agent.id": "planner",
        "http.response.status_code": 200,
    }
    if route == "mcp":
        attributes["mcp.method.name"] = "tools/call"
    start = START_NS + 500_000_000
    return _request(attributes, {}, start, start + 1_000_000_000)


async def tool_node(
    proxy: dict[str, object] | None = None,
) -> tuple[NodeContext, CallCorrelation, list[ExportTraceServiceRequest]]:
    config = Config.model_validate({"proxy": TOOL_ROUTES if proxy is None else proxy})
    context = node_context(config, ManualClock())
    exported: list[ExportTraceServiceRequest] = []
    context.pipeline.export_call = exported.append  # type: ignore[method-assign]
    correlation = CallCorrelation(context)
    await correlation.start()
    return context, correlation, exported


def tool_links(context: NodeContext, first: str, by: str = "fingerprint") -> float:
    value = context.registry.get_sample_value(
        "agent_sre_tool_calls_linked_total", {"by": by, "first": first}
    )
    return value or 0.0


@pytest.mark.parametrize("route", ["search", "mcp"])
async def test_a_proxy_tool_record_before_the_agent_span_is_claimed(route: str) -> None:
    context, correlation, exported = await tool_node()
    proxy = proxy_tool(route=route)
    correlation.offer(proxy)
    assert exported == [] and correlation.tools.held_count == 1
    assert correlation.correlator.held_count == 0  # not an LLM call
    agent = agent_tool()
    result = context.pipeline.processor.process(agent, NOW)
    (released,) = exported  # held as its bytes: released as a copy of what was offered
    assert only(released).span_id == only(proxy).span_id
    proxy = released
    taken = attrs(agent)
    assert taken["agent_sre.proxy.route"] == route
    assert taken["agent_sre.gateway.span_id"] == only(proxy).span_id.hex()
    assert taken["agent_sre.linked_by"] == "fingerprint"
    marks = attrs(proxy)
    assert marks["agent_sre.role"] == "gateway"
    assert marks["agent_sre.event.span_id"] == only(agent).span_id.hex()
    assert marks["http.response.status_code"] == 200  # its facts are kept
    assert only(proxy).trace_id == only(agent).trace_id
    assert result.by_kind == {c.AgentSpanKind.TOOL_CALL: 1}
    assert tool_links(context, "proxy") == 1 and linked(context, "proxy") == 0
    assert context.registry.get_sample_value("agent_sre_tool_calls_held") == 0
    # the gateway view, when it goes through the span pass, is not counted
    again = context.pipeline.processor.process(proxy, NOW)
    assert again.by_kind == {} and again.by_role == {"gateway": 1}


async def test_an_agent_tool_span_before_the_proxy_record_stays_the_event() -> None:
    context, correlation, exported = await tool_node()
    agent = agent_tool()
    context.pipeline.processor.process(agent, NOW)
    assert "agent_sre.role" not in attrs(agent)
    proxy = proxy_tool()
    correlation.offer(proxy)
    assert exported == [proxy]  # linked at once: not held
    marks = attrs(proxy)
    assert marks["agent_sre.role"] == "gateway"
    assert marks["agent_sre.event.span_id"] == only(agent).span_id.hex()
    assert tool_links(context, "agent") == 1
    assert correlation.tools.held_count == 0


async def test_a_tool_span_of_another_tool_links_to_nothing_and_the_record_is_released() -> None:
    context, correlation, exported = await tool_node()
    correlation.offer(proxy_tool())
    other = agent_tool(tool="weather")
    context.pipeline.processor.process(other, NOW)
    assert "agent_sre.role" not in attrs(other)
    assert exported == [] and correlation.tools.held_count == 1
    clock = context.clock
    assert isinstance(clock, ManualClock)
    clock.advance(11.0)
    correlation._expire()
    assert len(exported) == 1 and "agent_sre.role" not in attrs(exported[0])
    unlinked = context.registry.get_sample_value(
        "agent_sre_tool_calls_unlinked_total", {"reason": "hold_expired"}
    )
    assert unlinked == 1


async def test_without_a_tool_route_tool_calls_are_not_linked() -> None:
    """Nothing to link an agent's tool span to: it is not looked at, and a proxy tool span
    (of a route added later, say) goes in at once."""
    context, correlation, exported = await tool_node(proxy={})
    assert context.pipeline.processor.tool_enrichers == []
    agent = agent_tool()
    context.pipeline.processor.process(agent, NOW)
    proxy = proxy_tool()
    correlation.offer(proxy)
    assert exported == [proxy] and "agent_sre.role" not in attrs(proxy)
    assert correlation.status()["correlation"] == {
        "enabled": True,
        "held": 0,
        "holding": True,
        "tools": False,
        "tools_held": 0,
        "tools_holding": False,
        "delegations_held": 0,
    }


async def test_turning_tool_linking_off_releases_the_held_tool_calls() -> None:
    context, correlation, exported = await tool_node()
    correlation.offer(proxy_tool())
    assert correlation.tools.held_count == 1
    off = Config.model_validate({"proxy": {**TOOL_ROUTES, "correlation": {"tools": False}}})
    prepared = await correlation.prepare_reload(off)
    assert prepared.commit is not None
    await prepared.commit()
    assert len(exported) == 1 and correlation.tools.held_count == 0
    assert context.pipeline.processor.tool_enrichers == []
    assert context.pipeline.call_hold is not None  # LLM calls are still linked
    unlinked = context.registry.get_sample_value(
        "agent_sre_tool_calls_unlinked_total", {"reason": "hold_off"}
    )
    assert unlinked == 1
    # back on (a reload adding the tool routes): linked again
    prepared = await correlation.prepare_reload(Config.model_validate({"proxy": TOOL_ROUTES}))
    assert prepared.commit is not None
    await prepared.commit()
    correlation.offer(proxy_tool())
    assert correlation.tools.held_count == 1
    await correlation.stop(0.0)
    assert len(exported) == 2  # released at shutdown, never lost


async def test_a_task_span_releases_held_tool_calls_of_its_trace() -> None:
    context, correlation, exported = await tool_node()
    proxy = proxy_tool()
    task = agent_call()  # any span's ids; made a task below
    span = only(task)
    del span.attributes[:]
    span.attributes.add(key="agent.span.kind").value.string_value = "AGENT_TASK"
    only(proxy).trace_id = span.trace_id
    only(proxy).parent_span_id = span.span_id
    correlation.offer(proxy)
    assert correlation.tools.held_count == 1
    context.pipeline.processor.process(task, NOW)
    assert exported == [proxy]
    released = context.registry.get_sample_value(
        "agent_sre_tool_calls_unlinked_total", {"reason": "task_ended"}
    )
    assert released == 1


def unlinked(context: NodeContext, reason: str) -> float:
    value = context.registry.get_sample_value(
        "agent_sre_llm_calls_unlinked_total", {"reason": reason}
    )
    return value or 0.0


async def quiet_node(**correlation: object) -> Node:
    """A node whose first held record ran out its hold with no agent span: quiet."""
    config = Config.model_validate({"proxy": {"correlation": correlation}})
    context = node_context(config)
    exported: list[ExportTraceServiceRequest] = []
    context.pipeline.export_call = exported.append  # type: ignore[method-assign]
    correlation_ = CallCorrelation(context)
    await correlation_.start()
    correlation_.offer(proxy_call())
    clock = context.clock
    assert isinstance(clock, ManualClock)
    clock.advance(11.0)
    correlation_._expire()
    assert unlinked(context, "hold_expired") == 1
    assert correlation_.status()["correlation"]["holding"] is False
    exported.clear()
    return context, correlation_, exported


@pytest.mark.parametrize("handed", [True, False])
async def test_on_a_quiet_node_the_proxy_span_goes_at_once_and_a_late_agent_span_is_its_duplicate(
    handed: bool,
) -> None:
    """Quiet (no agent span during a whole hold): the proxy's span is the event at once,
    whether the proxy hands its attributes over (remembered unread) or not; the agent's
    span of the call arriving next is its duplicate, and records are held again."""
    context, correlation, exported = await quiet_node()
    proxy = proxy_call("gpt-4o")  # another model than the first record's: only this links
    correlation.offer(proxy, attrs(proxy) if handed else None)  # type: ignore[arg-type]
    assert exported == [proxy] and "agent_sre.role" not in attrs(proxy)
    assert correlation.correlator.held_count == 0
    assert unlinked(context, "quiet") == 1
    agent = agent_call("gpt-4o", **{"agent.id": "planner"})
    result = context.pipeline.processor.process(agent, NOW)
    marks = attrs(agent)
    assert marks["agent_sre.role"] == "duplicate"
    assert marks["agent_sre.linked_by"] == "fingerprint"
    assert "agent_sre.cost_usd" not in marks  # the call's cost counts once, on the proxy's
    assert marks["agent_sre.event.span_id"] == only(proxy).span_id.hex()
    assert sum(result.by_kind.values()) == 0  # not counted
    assert context.registry.get_sample_value("agent_sre_llm_duplicate_spans_total") == 1
    assert correlation.status()["correlation"]["holding"] is True
    later = proxy_call()
    correlation.offer(later, attrs(later))  # type: ignore[arg-type]
    assert exported == [proxy] and correlation.correlator.held_count == 1


async def test_quiet_records_are_bounded_and_forgotten() -> None:
    context, correlation, exported = await quiet_node(max_calls=5, remember="1m")
    for _ in range(20):
        proxy = proxy_call()
        correlation.offer(proxy, attrs(proxy))  # type: ignore[arg-type]
    assert len(exported) == 20
    assert len(correlation.correlator) <= 5
    clock = context.clock
    assert isinstance(clock, ManualClock)
    clock.advance(120.0)
    proxy = proxy_call()
    correlation.offer(proxy, attrs(proxy))  # type: ignore[arg-type]
    assert len(correlation.correlator) == 1


async def test_a_held_record_forced_out_by_quiet_ones_is_released_not_lost() -> None:
    """Records held before the node went quiet and still held (a longer hold than the
    first one's, after a reload) are forced out by the bound as events, never dropped."""
    context, correlation, exported = await quiet_node(max_calls=3)
    held = proxy_call()
    correlation.correlator._armed = True  # an agent span came: held again
    correlation.offer(held, attrs(held))  # type: ignore[arg-type]
    assert correlation.correlator.held_count == 1
    correlation.correlator._armed = False
    for _ in range(5):
        proxy = proxy_call()
        correlation.offer(proxy, attrs(proxy))  # type: ignore[arg-type]
    assert held in exported and len(exported) == 6
    assert correlation.correlator.held_count == 0
    assert unlinked(context, "bound") == 1


async def test_an_agent_span_remembered_keeps_the_quiet_node_linking() -> None:
    """An agent span counted before the proxy's record of its call, on a quiet node: the
    record still becomes its gateway view (the agent span is remembered for ``remember``)."""
    context, correlation, exported = await quiet_node()
    agent = agent_call("gpt-4o", **{"agent.id": "planner"})
    context.pipeline.processor.process(agent, NOW)
    correlation.correlator._armed = False  # as if its hold ran out meanwhile
    proxy = proxy_call("gpt-4o")
    correlation.offer(proxy, attrs(proxy))  # type: ignore[arg-type]
    assert attrs(proxy)["agent_sre.role"] == "gateway"
    assert linked(context, "agent") == 1
