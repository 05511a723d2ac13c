"""One call, one event: the correlator's decisions do not depend on arrival order.

Agents' spans come in as facts (:meth:`CallCorrelator.match_agent`) or, as in the span pass,
as views remembered unread until a proxy record comes (``views=True``): same decisions. Tool
calls (a correlator reading tool names, ``TOOL_NAME_KEYS``) follow the same rules.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from agent_sre.tracing import conventions as c
from agent_sre.tracing.correlate import (
    LINK_FINGERPRINT,
    LINK_RESPONSE_ID,
    LINK_TRACE,
    MODEL_KEYS,
    TOOL_NAME_KEYS,
    CallCorrelator,
    CallFacts,
)
from agent_sre.tracing.view import AgentSpan

VIEWS = [False, True]

S = 1_000_000_000  # ns
T0 = 1_700_000_000.0

_ids = itertools.count(1)


def _id(size: int) -> bytes:
    return next(_ids).to_bytes(size, "big")


def call(
    *,
    start: float = 0.0,
    end: float = 1.0,
    model: str = "gpt-4o",
    usage: tuple[int, int] | None = (10, 5),
    response_id: str = "",
    agent: str = "",
    error: bool = False,
) -> tuple[CallFacts, CallFacts]:
    """The agent's span and the proxy's record of one call (no trace context: fingerprint)."""
    agent_span = CallFacts(
        trace_id=_id(16),
        span_id=_id(8),
        start_ns=int(start * S),
        end_ns=int(end * S),
        response_id=response_id,
        models=(model,),
        input_tokens=usage[0] if usage else None,
        output_tokens=usage[1] if usage else None,
        agent_id=agent,
        is_error=error,
    )
    margin = (end - start) / 10
    proxy = CallFacts(
        trace_id=_id(16),
        span_id=_id(8),
        start_ns=int((start + margin) * S),
        end_ns=int((end - margin) * S),
        response_id=response_id,
        models=(model,),
        input_tokens=usage[0] if usage else None,
        output_tokens=usage[1] if usage else None,
        agent_id=agent,
        is_error=error,
    )
    return agent_span, proxy


def traced(agent_span: CallFacts, proxy: CallFacts, direct_child: bool = True) -> CallFacts:
    """The proxy's record when the call carried ``traceparent``."""
    parent = agent_span.span_id if direct_child else _id(8)
    return replace(proxy, trace_id=agent_span.trace_id, parent_span_id=parent)


def tool_call(
    *,
    start: float = 0.0,
    end: float = 1.0,
    tool: str = "search",
    agent: str = "",
    error: bool = False,
) -> tuple[CallFacts, CallFacts]:
    """The agent's ``execute_tool`` span and the proxy's record of one tool call (no trace
    context: fingerprint). Tool calls have no response id and no usage."""
    agent_span, proxy = call(start=start, end=end, model=tool, usage=None, agent=agent)
    return replace(agent_span, is_error=error), replace(proxy, is_error=error)


def view_of(facts: CallFacts, names: tuple[str, ...] = MODEL_KEYS) -> AgentSpan:
    """The span pass's view of an agent's LLM (or tool) span with these facts."""
    if names is TOOL_NAME_KEYS:
        return tool_view(facts)
    attrs: dict[str, str | int | float | bool] = {c.GEN_AI_OPERATION_NAME: "chat"}
    for key, value in (
        (c.GEN_AI_REQUEST_MODEL, facts.models[0] if facts.models else None),
        (c.GEN_AI_RESPONSE_ID, facts.response_id),
        (c.GEN_AI_USAGE_INPUT_TOKENS, facts.input_tokens),
        (c.GEN_AI_USAGE_OUTPUT_TOKENS, facts.output_tokens),
        (c.AGENT_ID, facts.agent_id),
    ):
        if value is not None and value != "":
            attrs[key] = value
    return AgentSpan(
        c.AgentSpanKind.LLM_INFERENCE,
        False,
        "chat",
        facts.trace_id,
        facts.span_id,
        facts.start_ns,
        facts.end_ns,
        facts.is_error,
        attrs,
    )


def tool_view(
    facts: CallFacts, name_key: str = c.GEN_AI_TOOL_NAME, **extra: str | int | float | bool
) -> AgentSpan:
    """The span pass's view of an agent's tool span (GenAI ``execute_tool``, or OpenInference
    with ``name_key="tool.name"``)."""
    attrs: dict[str, str | int | float | bool] = {c.GEN_AI_OPERATION_NAME: "execute_tool"}
    if facts.models:
        attrs[name_key] = facts.models[0]
    if facts.agent_id:
        attrs[c.AGENT_ID] = facts.agent_id
    attrs.update(extra)
    return AgentSpan(
        c.AgentSpanKind.TOOL_CALL,
        False,
        f"execute_tool {facts.models[0] if facts.models else ''}",
        facts.trace_id,
        facts.span_id,
        facts.start_ns,
        facts.end_ns,
        facts.is_error,
        attrs,
    )


class Daemon:
    """What the daemon does with the correlator's answers: counts events."""

    def __init__(
        self,
        hold: float = 10.0,
        max_calls: int = 1000,
        views: bool = False,
        names: tuple[str, ...] = MODEL_KEYS,
    ) -> None:
        self.correlator: CallCorrelator[CallFacts] = CallCorrelator(
            hold, 600.0, max_calls, names=names
        )
        self.names = names
        self.views = views
        self.events: list[CallFacts] = []
        self.links: list[str] = []
        self.gateways: list[CallFacts] = []
        self.duplicates: list[CallFacts] = []

    def proxy(self, facts: CallFacts, now: float) -> None:
        outcome, forced = self.correlator.offer_gateway(facts, facts, T0 + now)
        self.events += forced
        if outcome.linked_to is not None:
            self.links.append(outcome.key)
            self.gateways.append(facts)
        elif not outcome.held:
            self.events.append(facts)

    def agent(self, facts: CallFacts, now: float, view: AgentSpan | None = None) -> None:
        if self.views or view is not None:
            found = self.correlator.offer_agent(view or view_of(facts, self.names), T0 + now)
            if found is None:  # remembered: no proxy record links to it (yet)
                self.events.append(facts)
                return
            outcome = found
        else:
            outcome, forced = self.correlator.match_agent(facts, T0 + now)
            self.events += forced
        if outcome.duplicate_of is not None:
            self.duplicates.append(facts)
            return
        self.events.append(facts)
        for entry, key in outcome.claimed:
            self.links.append(key)
            self.gateways.append(entry.facts)

    def tick(self, now: float) -> None:
        self.events += self.correlator.expire(T0 + now)

    def stop(self) -> None:
        self.events += self.correlator.release_all()


LINKS = {
    LINK_RESPONSE_ID: lambda: call(response_id=f"chatcmpl-{next(_ids)}"),
    LINK_TRACE: lambda: (lambda a, p: (a, traced(a, p)))(*call(usage=None)),
    LINK_FINGERPRINT: lambda: call(),
}
TOOL_LINKS = {
    LINK_TRACE: lambda: (lambda a, p: (a, traced(a, p)))(*tool_call()),
    LINK_FINGERPRINT: lambda: tool_call(agent="planner"),
}
"""Tool calls: no response id (the proxy never sees the LLM's tool call id)."""
KINDS = {"llm": (LINKS, MODEL_KEYS), "tool": (TOOL_LINKS, TOOL_NAME_KEYS)}


KEYS_OF_KINDS = [(kind, key) for kind, (links, _) in KINDS.items() for key in links]


@pytest.mark.parametrize("views", VIEWS)
@pytest.mark.parametrize(("kind", "key"), KEYS_OF_KINDS)
def test_the_agent_span_is_the_event_when_it_comes_within_the_hold(
    kind: str, key: str, views: bool
) -> None:
    links, names = KINDS[kind]
    agent_span, proxy = links[key]()
    daemon = Daemon(views=views, names=names)
    daemon.proxy(proxy, 1.0)
    daemon.tick(5.0)
    daemon.agent(agent_span, 6.0)
    daemon.tick(60.0)
    daemon.stop()
    assert daemon.events == [agent_span]
    assert daemon.links == [key]
    assert daemon.gateways == [proxy]


@pytest.mark.parametrize("views", VIEWS)
@pytest.mark.parametrize(("kind", "key"), KEYS_OF_KINDS)
def test_the_agent_span_arriving_first_stays_the_event(kind: str, key: str, views: bool) -> None:
    links, names = KINDS[kind]
    agent_span, proxy = links[key]()
    daemon = Daemon(views=views, names=names)
    daemon.agent(agent_span, 1.0)
    daemon.proxy(proxy, 1.5)
    daemon.tick(60.0)
    daemon.stop()
    assert daemon.events == [agent_span]
    assert daemon.links == [key]
    assert daemon.gateways == [proxy]


@pytest.mark.parametrize("views", VIEWS)
@pytest.mark.parametrize(("kind", "key"), KEYS_OF_KINDS)
def test_a_late_agent_span_is_a_duplicate_of_the_released_record(
    kind: str, key: str, views: bool
) -> None:
    links, names = KINDS[kind]
    agent_span, proxy = links[key]()
    daemon = Daemon(views=views, names=names)
    daemon.proxy(proxy, 1.0)
    daemon.tick(11.0)  # the hold ended: the proxy's record is the event
    assert daemon.events == [proxy]
    daemon.agent(agent_span, 30.0)
    daemon.stop()
    assert daemon.events == [proxy]
    assert daemon.duplicates == [agent_span]


@pytest.mark.parametrize("views", VIEWS)
@pytest.mark.parametrize("hold", [0.0, 10.0])
@pytest.mark.parametrize("kind", list(KINDS))
def test_every_arrival_order_counts_each_call_once(kind: str, hold: float, views: bool) -> None:
    links, names = KINDS[kind]
    # nine calls: three of each link (eight tool calls: four of each)
    calls = [links[key]() for key in links for _ in range(9 // len(links))]
    # every interleaving of (proxy, agent) per call, with arrival times spread past the hold
    for order in itertools.product([0, 1], repeat=len(calls)):
        daemon = Daemon(hold=hold, views=views, names=names)
        now = 0.0
        for (agent_span, proxy), agent_first in zip(calls, order, strict=True):
            now += 3.0
            if agent_first:
                daemon.agent(agent_span, now)
                daemon.proxy(proxy, now + 0.1)
            else:
                daemon.proxy(proxy, now)
                daemon.agent(agent_span, now + (12.0 if now % 2 else 0.5))
            daemon.tick(now)
        daemon.tick(now + 100)
        daemon.stop()
        assert len(daemon.events) == len(calls), order
        assert len({id(e) for e in daemon.events}) == len(calls)


@pytest.mark.parametrize("views", VIEWS)
def test_different_calls_never_link(views: bool) -> None:
    daemon = Daemon(views=views)
    agent_a, _ = call(model="gpt-4o", start=0, end=1, usage=(7, 3))
    _, proxy_b = call(model="gpt-4o-mini", start=0, end=1, usage=(7, 3))  # another model
    _, proxy_c = call(model="gpt-4o", start=5, end=6, usage=(7, 3))  # outside the agent's span
    _, proxy_d = call(model="gpt-4o", start=0, end=1, usage=(7, 4))  # other usage
    agent_e, proxy_e = call(response_id="r-e")
    _, proxy_f = call(response_id="r-f")  # another response id
    agent_g, proxy_g = call(agent="planner", usage=(20, 9))
    agent_g = replace(agent_g, agent_id="support")  # another agent
    for proxy in (proxy_b, proxy_c, proxy_d, proxy_f, proxy_g):
        daemon.proxy(proxy, 0.0)
    for agent_span in (agent_a, agent_e, agent_g):
        daemon.agent(agent_span, 1.0)
    daemon.tick(20.0)
    assert daemon.links == []
    assert len(daemon.events) == 8


@pytest.mark.parametrize("views", VIEWS)
def test_a_trace_link_needs_the_same_trace_and_containment(views: bool) -> None:
    agent_span, proxy = call(usage=None)
    elsewhere = replace(proxy, trace_id=_id(16), parent_span_id=_id(8))
    assert_no_link(agent_span, elsewhere, views)
    later = replace(
        traced(agent_span, proxy, direct_child=False),
        start_ns=agent_span.end_ns + 5 * S,
        end_ns=agent_span.end_ns + 6 * S,
    )
    assert_no_link(agent_span, later, views)
    # through an HTTP client span: contained in time
    daemon = Daemon(views=views)
    daemon.proxy(traced(agent_span, proxy, direct_child=False), 0.0)
    daemon.agent(agent_span, 1.0)
    assert daemon.links == [LINK_TRACE]


def assert_no_link(agent_span: CallFacts, proxy: CallFacts, views: bool) -> None:
    for order in ("proxy first", "agent first"):
        daemon = Daemon(views=views)
        if order == "proxy first":
            daemon.proxy(proxy, 0.0)
        daemon.agent(agent_span, 1.0)
        if order == "agent first":
            daemon.proxy(proxy, 1.5)
        assert daemon.links == [], order


@pytest.mark.parametrize("views", VIEWS)
def test_sdk_retries_are_one_event(views: bool) -> None:
    """Two failed attempts (no response id, no usage) then the answer, all inside the agent's
    one span: the agent's span is the one event."""
    agent_span, _ = call(start=0, end=10, response_id="r-ok")
    attempts = [
        replace(
            agent_span,
            trace_id=_id(16),
            span_id=_id(8),
            start_ns=int((1 + 2 * i) * S),
            end_ns=int((2 + 2 * i) * S),
            response_id="" if i < 2 else "r-ok",
            input_tokens=None if i < 2 else 10,
            output_tokens=None if i < 2 else 5,
            is_error=i < 2,
        )
        for i in range(3)
    ]
    daemon = Daemon(views=views)
    for attempt in attempts:
        daemon.proxy(attempt, 1.0)
    daemon.agent(agent_span, 2.0)
    daemon.tick(30.0)
    assert daemon.events == [agent_span]
    assert len(daemon.gateways) == 3


@pytest.mark.parametrize("views", VIEWS)
def test_concurrent_calls_without_ids_pair_one_to_one(views: bool) -> None:
    """Eight calls of one model at once, no trace context or response id: each agent span
    claims one record, whichever, and no record is left to count twice."""
    calls = [call(start=i * 0.01, end=2 + i * 0.01, usage=(10 + i % 2, 5)) for i in range(8)]
    daemon = Daemon(views=views)
    for _, proxy in calls:
        daemon.proxy(proxy, 1.0)
    for agent_span, _ in reversed(calls):
        daemon.agent(agent_span, 2.0)
    daemon.tick(30.0)
    assert len(daemon.events) == 8
    assert all(event in [a for a, _ in calls] for event in daemon.events)
    assert daemon.links == [LINK_FINGERPRINT] * 8


def test_an_agent_task_releases_the_held_records_of_its_trace() -> None:
    agent_span, proxy = call(usage=None)
    record = traced(agent_span, proxy, direct_child=False)
    daemon = Daemon()
    daemon.proxy(record, 0.0)
    assert daemon.correlator.has_held_trace(agent_span.trace_id)
    # a task span of another time range in the trace leaves it held
    assert daemon.correlator.release_trace(agent_span.trace_id, 50 * S, 60 * S) == []
    released = daemon.correlator.release_trace(agent_span.trace_id, 0, 2 * S)
    assert released == [record]
    daemon.agent(agent_span, 1.0)  # an LLM span after its task: a duplicate
    assert daemon.duplicates == [agent_span]


def test_the_state_is_bounded_and_held_records_are_never_lost() -> None:
    daemon = Daemon(max_calls=5)
    proxies = [call(response_id=f"r{i}")[1] for i in range(12)]
    for proxy in proxies:
        daemon.proxy(proxy, 0.0)
    assert len(daemon.correlator) <= 5
    assert daemon.events == proxies[:7]  # forced out as events, oldest first
    daemon.stop()
    assert daemon.events == proxies
    assert daemon.correlator.next_due() is None


@pytest.mark.parametrize("views", VIEWS)
def test_remembered_agent_spans_are_bounded_whether_read_or_not(views: bool) -> None:
    """Agent spans are remembered at most ``max_calls``, oldest forgotten first, also when a
    proxy record made the correlator read the ones it had (and later ones are unread)."""
    daemon = Daemon(max_calls=5, views=views)
    agents = [call(response_id=f"r{i}")[0] for i in range(7)]
    for agent_span in agents[:3]:
        daemon.agent(agent_span, 1.0)
    daemon.proxy(call(response_id="elsewhere")[1], 1.5)  # links to none: held
    for agent_span in agents[3:]:
        daemon.agent(agent_span, 2.0)
    assert len(daemon.correlator) == 1 + 5
    daemon.proxy(replace(call()[1], response_id="r1"), 3.0)  # r0, r1 were forgotten
    assert daemon.links == []
    daemon.proxy(replace(call()[1], response_id="r2"), 3.0)
    assert daemon.links == [LINK_RESPONSE_ID]


@pytest.mark.parametrize("views", VIEWS)
def test_an_agent_span_past_its_time_is_forgotten_once_read(views: bool) -> None:
    daemon = Daemon(hold=0.0, views=views)
    old, _ = call(response_id="old")
    daemon.agent(old, 0.0)
    daemon.proxy(call(response_id="elsewhere")[1], 1.0)
    daemon.agent(call(response_id="new")[0], 601.0)
    assert len(daemon.correlator) == 2
    late = replace(call()[1], response_id="old")
    daemon.proxy(late, 602.0)
    assert daemon.links == [] and late in daemon.events


@pytest.mark.parametrize("views", VIEWS)
def test_remembered_records_are_forgotten_after_their_time(views: bool) -> None:
    daemon = Daemon(hold=0.0, views=views)
    for i in range(20):
        daemon.agent(call(response_id=f"a{i}")[0], float(i))
    daemon.agent(call(response_id="late")[0], 10_000.0)
    assert len(daemon.correlator) == 1


def test_hold_zero_makes_the_proxy_record_the_event() -> None:
    agent_span, proxy = call(response_id="r-1")
    daemon = Daemon(hold=0.0)
    daemon.proxy(proxy, 0.0)
    daemon.agent(agent_span, 0.5)
    assert daemon.events == [proxy]
    assert daemon.duplicates == [agent_span]


@pytest.mark.parametrize("views", VIEWS)
def test_a_second_instrumentation_of_a_claimed_call_is_a_duplicate(views: bool) -> None:
    agent_span, proxy = call(response_id="r-2")
    wrapper = replace(agent_span, span_id=_id(8))
    daemon = Daemon(views=views)
    daemon.proxy(proxy, 0.0)
    daemon.agent(agent_span, 1.0)
    daemon.agent(wrapper, 1.0)
    assert daemon.events == [agent_span]
    assert daemon.duplicates == [wrapper]


@pytest.mark.parametrize("views", VIEWS)
def test_a_call_that_failed_after_retries_is_one_bad_event(views: bool) -> None:
    """Every attempt failed (no response id, no usage): whichever attempt the agent's span
    links to, the others are its retries."""
    agent_span, _ = call(start=0, end=10, usage=None, error=True)
    attempts = [
        replace(
            agent_span,
            trace_id=_id(16),
            span_id=_id(8),
            start_ns=int((1 + 3 * i) * S),
            end_ns=int((2 + 3 * i) * S),
        )
        for i in range(3)
    ]
    daemon = Daemon(views=views)
    for attempt in attempts:
        daemon.proxy(attempt, 1.0)
    daemon.agent(agent_span, 2.0)
    daemon.tick(30.0)
    assert daemon.events == [agent_span]
    assert len(daemon.gateways) == 3


def test_the_span_pass_never_counts_a_second_view() -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from agent_sre.tracing.batch import TraceBatchProcessor
    from agent_sre.tracing.view import CORE_KEYS

    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for role in ("", "gateway", "duplicate"):
        span = scope.spans.add(trace_id=_id(16), span_id=_id(8), name="chat gpt-4o")
        span.attributes.add(key="gen_ai.operation.name").value.string_value = "chat"
        if role:
            span.attributes.add(key="agent_sre.role").value.string_value = role
    seen: list[AgentSpan] = []
    priced: list[AgentSpan] = []
    processor = TraceBatchProcessor(
        {},
        observers=[lambda view, now: seen.append(view)],
        wanted=CORE_KEYS,
        llm_enrichers=[lambda span, view, now: priced.append(view)],
    )
    result = processor.process(request, T0)
    assert result.accepted == 3
    assert len(seen) == len(priced) == 1
    assert sum(result.by_kind.values()) == 1
    assert result.by_role == {"gateway": 1, "duplicate": 1}


# -- tool calls ---------------------------------------------------------------------------


def tools(views: bool = True, hold: float = 10.0) -> Daemon:
    return Daemon(hold=hold, views=views, names=TOOL_NAME_KEYS)


@pytest.mark.parametrize("views", VIEWS)
def test_different_tool_calls_never_link(views: bool) -> None:
    daemon = tools(views)
    agent_a, _ = tool_call(tool="search", agent="planner")
    _, proxy_b = tool_call(tool="weather", agent="planner")  # another tool
    _, proxy_c = tool_call(tool="search", agent="planner", start=5, end=6)  # outside in time
    _, proxy_d = tool_call(tool="search", agent="support")  # another agent
    _, proxy_e = tool_call(tool="search", agent="planner")
    proxy_e = replace(proxy_e, trace_id=_id(16), parent_span_id=_id(8))  # another trace
    for proxy in (proxy_b, proxy_c, proxy_d, proxy_e):
        daemon.proxy(proxy, 0.0)
    daemon.agent(agent_a, 1.0)
    daemon.tick(20.0)
    assert daemon.links == []
    assert len(daemon.events) == 5


def test_an_llm_call_and_a_tool_call_of_one_name_are_not_linked() -> None:
    """A tool correlator reads tool names only: an LLM span naming a model like the tool, or
    a tool span naming no tool, links to nothing."""
    daemon = tools()
    agent_span, proxy = tool_call(tool="gpt-4o")
    daemon.proxy(proxy, 0.0)
    daemon.agent(agent_span, 1.0, view=view_of(agent_span))  # an LLM span's view
    daemon.agent(agent_span, 1.0, view=tool_view(replace(agent_span, models=())))
    daemon.tick(20.0)
    assert daemon.links == []
    assert len(daemon.events) == 3


def test_openinference_tool_spans_link_by_tool_name() -> None:
    daemon = tools()
    agent_span, proxy = tool_call(tool="lookup", agent="planner")
    daemon.proxy(proxy, 0.0)
    daemon.agent(agent_span, 1.0, view=tool_view(agent_span, name_key=c.TOOL_NAME))
    assert daemon.events == [agent_span]
    assert daemon.links == [LINK_FINGERPRINT]


@pytest.mark.parametrize("agent_first", [False, True])
def test_an_mcp_span_links_when_it_is_a_tools_call(agent_first: bool) -> None:
    """MCP client spans carry ``mcp.method.name``: ``tools/call`` with the tool's name (the
    proxy's record of an MCP call names ``params.name``); another method calls no tool."""
    for method, linked in ((c.MCP_TOOLS_CALL, True), ("tools/list", False)):
        daemon = tools()
        agent_span, proxy = tool_call(tool="get_weather", agent="planner")
        view = tool_view(agent_span, **{c.MCP_METHOD_NAME: method})
        if agent_first:
            daemon.agent(agent_span, 1.0, view=view)
        daemon.proxy(proxy, 1.0)
        if not agent_first:
            daemon.agent(agent_span, 1.0, view=view)
        daemon.tick(20.0)
        assert daemon.links == ([LINK_FINGERPRINT] if linked else []), method
        assert len(daemon.events) == (1 if linked else 2), method


@pytest.mark.parametrize("views", VIEWS)
def test_parallel_calls_of_one_tool_pair_one_to_one(views: bool) -> None:
    """An agent calling one tool eight times at once, no trace context: each agent span
    claims one record, and each call counts once."""
    calls = [tool_call(start=i * 0.01, end=2 + i * 0.01, agent="planner") for i in range(8)]
    daemon = tools(views)
    for agent_span, _ in calls[:4]:
        daemon.agent(agent_span, 1.0)
    for _, proxy in calls:
        daemon.proxy(proxy, 1.5)
    for agent_span, _ in reversed(calls[4:]):
        daemon.agent(agent_span, 2.0)
    daemon.tick(30.0)
    daemon.stop()
    assert sorted(map(id, daemon.events)) == sorted(id(a) for a, _ in calls)
    assert sorted(map(id, daemon.gateways)) == sorted(id(p) for _, p in calls)
    assert daemon.links == [LINK_FINGERPRINT] * 8


def test_a_task_releases_the_held_tool_calls_of_its_trace() -> None:
    agent_span, proxy = tool_call()
    record = traced(agent_span, proxy, direct_child=False)
    daemon = tools()
    daemon.proxy(record, 0.0)
    assert daemon.correlator.release_trace(agent_span.trace_id, 0, 2 * S) == [record]
    daemon.agent(agent_span, 1.0)
    assert daemon.duplicates == [agent_span]


# -- holding only while agents trace their calls -----------------------------------------


@pytest.mark.parametrize("views", VIEWS)
@pytest.mark.parametrize(("kind", "key"), KEYS_OF_KINDS)
def test_after_a_hold_with_no_agent_span_records_are_the_event_at_once(
    kind: str, key: str, views: bool
) -> None:
    """No agent on the node traces its calls: the first record waits its hold, the next ones
    are the event at once (nothing held, nothing to release later), and are still
    remembered, so an agent span of such a call arriving later is its duplicate."""
    links, names = KINDS[kind]
    daemon = Daemon(views=views, names=names)
    first = links[key]()[1]
    daemon.proxy(first, 1.0)
    assert daemon.correlator.holding and daemon.correlator.held_count == 1
    daemon.tick(11.5)  # its whole hold passed and no agent span came
    assert daemon.events == [first]
    assert not daemon.correlator.holding
    quiet = [links[key]() for _ in range(3)]
    for index, (_, proxy) in enumerate(quiet):
        outcome, forced = daemon.correlator.offer_gateway(proxy, proxy, T0 + 20.0 + index)
        assert not outcome.held and outcome.quiet and outcome.linked_to is None
        assert forced == []
        daemon.events.append(proxy)
    assert daemon.correlator.held_count == 0 and daemon.correlator.next_due() is None
    assert daemon.events == [first] + [proxy for _, proxy in quiet]


@pytest.mark.parametrize("views", VIEWS)
@pytest.mark.parametrize(("kind", "key"), KEYS_OF_KINDS)
def test_an_agent_starting_to_trace_after_a_quiet_spell_counts_each_call_once(
    kind: str, key: str, views: bool
) -> None:
    """The edge: an agent starts tracing after a quiet spell. Its first spans describe calls
    whose records were the event at once: each is their duplicate (one event per call). From
    its first span on, records are held again, and its spans of later calls are the event."""
    links, names = KINDS[kind]
    daemon = Daemon(views=views, names=names)
    daemon.proxy(links[key]()[1], 1.0)
    daemon.tick(12.0)
    assert not daemon.correlator.holding
    before = [links[key]() for _ in range(3)]  # made while quiet, their spans exported later
    for _, proxy in before:
        daemon.proxy(proxy, 20.0)
    for agent_span, _ in before:  # the agent's first batch of spans
        daemon.agent(agent_span, 24.0)
    assert daemon.duplicates == [agent_span for agent_span, _ in before]
    assert daemon.correlator.holding
    after_span, after_proxy = links[key]()
    daemon.proxy(after_proxy, 25.0)
    assert daemon.correlator.held_count == 1
    daemon.agent(after_span, 27.0)
    assert daemon.links[-1] == key and daemon.gateways[-1] is after_proxy
    daemon.tick(100.0)
    daemon.stop()
    calls = 1 + len(before) + 1
    assert len(daemon.events) == calls
    assert len({id(e) for e in daemon.events}) == calls
    assert daemon.events[-1] is after_span


@pytest.mark.parametrize("views", VIEWS)
def test_an_agent_span_first_after_a_quiet_spell_stays_the_event(views: bool) -> None:
    """The agent's span of a call reaches the node before the proxy's record of it, right
    after a quiet spell: the span is the event, the record its gateway view."""
    daemon = Daemon(views=views)
    daemon.proxy(call()[1], 1.0)
    daemon.tick(12.0)
    agent_span, proxy = call(response_id="r-first", start=20.0, end=21.0)
    daemon.agent(agent_span, 21.0)
    assert daemon.correlator.holding
    daemon.proxy(proxy, 21.1)
    assert daemon.events[-1] is agent_span and daemon.gateways == [proxy]


@pytest.mark.parametrize("views", VIEWS)
def test_an_agent_span_during_a_hold_keeps_records_held(views: bool) -> None:
    """A record no agent span claims (an agent that does not trace) beside an agent that does:
    its hold ends, but an agent span came meanwhile, so later records are still held."""
    daemon = Daemon(views=views)
    _, untraced = call(model="gpt-4o-mini")
    daemon.proxy(untraced, 1.0)
    traced_span, traced_record = call(response_id="r-traced")
    daemon.proxy(traced_record, 2.0)
    daemon.agent(traced_span, 5.0)
    daemon.tick(12.0)
    assert daemon.events == [traced_span, untraced]
    assert daemon.correlator.holding
    daemon.proxy(call()[1], 13.0)
    assert daemon.correlator.held_count == 1


def test_records_released_otherwise_than_by_their_hold_keep_holding() -> None:
    """Only a hold that ran out says agents do not trace: a record released by its task span,
    by the bound, or at shutdown leaves holding on."""
    daemon = Daemon(max_calls=2)
    agent_span, proxy = call(usage=None)
    record = traced(agent_span, proxy, direct_child=False)
    daemon.proxy(record, 0.0)
    assert daemon.correlator.release_trace(agent_span.trace_id, 0, 2 * S) == [record]
    for _ in range(3):
        daemon.proxy(call()[1], 1.0)  # the bound forces the oldest out
    assert daemon.correlator.holding
    daemon.stop()
    assert daemon.correlator.holding


def test_hold_zero_is_not_quiet() -> None:
    daemon = Daemon(hold=0.0)
    outcome, _ = daemon.correlator.offer_gateway(call()[1], call()[1], T0)
    assert not outcome.held and not outcome.quiet
    assert not daemon.correlator.holding
