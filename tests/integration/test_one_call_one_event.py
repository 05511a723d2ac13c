"""One LLM call, one event: real GenAI instrumentations export OTLP to the daemon and call
the model through its proxy (as the README tells users to); every call counts once in the
SLOs, in task cost, in spend and in the cost forwarded upstream, whatever the
instrumentation, with and without ``traceparent``, streamed or not, OpenAI and Anthropic."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.request
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import openai
import pytest
from genai_prices import Usage, calc_price
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

from tests.integration.conftest import forwarding
from tests.support.metrics import scrape
from tests.support.stand_in import ThreadedProvider
from tests.support.upstream import RecordingUpstream, attrs

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from opentelemetry import trace

    from tests.fakes.provider import FakeProvider
    from tests.support.daemon import DaemonProcess

OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-3-5-haiku-latest"
CALLS = 2
REPLY_WORDS = 100
"""Long replies make output the bulk of a call's price, so one call's cost and two calls'
cost fall on either side of one threshold whatever each framework's prompt adds."""

SCENARIOS = [
    (framework, propagate, stream)
    for framework in ("openai-v2", "openinference", "pydantic-ai", "pydantic-ai-anthropic")
    for propagate in (False, True)
    for stream in (False, True)
]


def scenario_id(framework: str, propagate: bool, stream: bool) -> str:
    return f"{framework}{'-traced' if propagate else ''}{'-stream' if stream else ''}"


OPENAI_IDS = [scenario_id(*s) for s in SCENARIOS if not s[0].endswith("anthropic")]
ANTHROPIC_IDS = [scenario_id(*s) for s in SCENARIOS if s[0].endswith("anthropic")]
FAILING = ["openai-v2-server-error", "openai-v2-bad-request"]


def cost_slo(name: str, threshold: float, agents: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "target": 0.5,
        "window": "30d",
        "sli": {"kind": "cost_per_task", "threshold": threshold, "match": {"agent.id": agents}},
        "labels": ["agent.id"],
    }


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@pytest.fixture
def stand_in() -> Iterator[FakeProvider]:
    with ThreadedProvider(reply_words=REPLY_WORDS) as fake:
        yield fake


def proxy_config(provider_url: str, **correlation: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "endpoint": "127.0.0.1:0",
        "routes": [
            {"name": "openai", "prefix": "/openai", "upstream": provider_url, "api": "openai"},
            {
                "name": "anthropic",
                "prefix": "/anthropic",
                "upstream": provider_url,
                "api": "anthropic",
            },
        ],
    }
    if correlation:
        config["correlation"] = correlation
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
def instrumented(framework: str, provider: TracerProvider, propagate: bool) -> Iterator[None]:
    done: list[Any] = []
    try:
        if propagate:  # the HTTP client sends traceparent
            from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor

            done.append(HTTPX2ClientInstrumentor())
            done[-1].instrument(tracer_provider=provider)
        if framework.startswith("openai-v2"):
            from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

            done.append(OpenAIInstrumentor())
            done[-1].instrument(tracer_provider=provider)
        elif framework == "openinference":
            from openinference.instrumentation.openai import OpenAIInstrumentor as OIInstrumentor

            done.append(OIInstrumentor())
            done[-1].instrument(tracer_provider=provider)
        yield
    finally:
        for instrumentor in reversed(done):
            instrumentor.uninstrument()


def run_openai_sdk(
    daemon: DaemonProcess, provider: TracerProvider, stream: bool, **options: Any
) -> None:
    """An agent of a few lines: a task span around each call (openai-v2 and OpenInference
    only instrument the client)."""
    client = openai.OpenAI(
        base_url=f"http://{daemon.addresses['proxy']}/openai/v1",
        api_key="sk-test",
        max_retries=options.pop("max_retries", 2),
    )
    tracer = provider.get_tracer("the-agent")
    for _ in range(options.pop("calls", CALLS)):
        with tracer.start_as_current_span(
            "invoke_agent support", attributes={"gen_ai.operation.name": "invoke_agent"}
        ):
            messages = [{"role": "user", "content": "hello there"}]
            if stream:
                for _chunk in client.chat.completions.create(
                    model=OPENAI_MODEL, messages=messages, stream=True, **options
                ):
                    pass
            else:
                client.chat.completions.create(model=OPENAI_MODEL, messages=messages, **options)


def run_pydantic_ai(
    daemon: DaemonProcess, provider: TracerProvider, stream: bool, anthropic: bool
) -> None:
    from pydantic_ai import Agent
    from pydantic_ai.models.instrumented import InstrumentationSettings

    proxy = f"http://{daemon.addresses['proxy']}"
    model: Any
    if anthropic:
        from pydantic_ai.models.anthropic import AnthropicModel
        from pydantic_ai.providers.anthropic import AnthropicProvider

        model = AnthropicModel(
            ANTHROPIC_MODEL,
            provider=AnthropicProvider(base_url=f"{proxy}/anthropic", api_key="sk-ant-test"),
        )
    else:
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        model = OpenAIChatModel(
            OPENAI_MODEL, provider=OpenAIProvider(base_url=f"{proxy}/openai/v1", api_key="sk-t")
        )
    agent = Agent(model, name="support")
    agent.instrument = InstrumentationSettings(tracer_provider=provider)

    async def streamed() -> None:
        async with agent.run_stream("hello there") as result:
            assert await result.get_output()

    for _ in range(CALLS):
        if stream:
            asyncio.run(streamed())
        else:
            assert agent.run_sync("hello there").output


def run_scenario(daemon: DaemonProcess, framework: str, propagate: bool, stream: bool) -> None:
    provider = agent_provider(daemon, scenario_id(framework, propagate, stream))
    try:
        with instrumented(framework, provider, propagate):
            if framework.startswith("pydantic-ai"):
                run_pydantic_ai(daemon, provider, stream, framework.endswith("anthropic"))
            else:
                run_openai_sdk(daemon, provider, stream)
    finally:
        provider.shutdown()  # flushes the batch


def events(metrics: dict[Any, float], slo: str) -> dict[str, dict[str, float]]:
    """{agent.id: {good, bad}} of an SLO labelled by agent.id."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: {"good": 0.0, "bad": 0.0})
    for (name, labels), value in metrics.items():
        label = dict(labels)
        if name == "agent_sre_slo_events_total" and label.get("slo") == slo:
            out[label.get("agent_id", "")][label["result"]] += value
    return out


def price(span_attrs: dict[str, Any]) -> float:
    usage = Usage(
        input_tokens=span_attrs["gen_ai.usage.input_tokens"],
        output_tokens=span_attrs["gen_ai.usage.output_tokens"],
    )
    model = span_attrs.get("gen_ai.response.model") or span_attrs["gen_ai.request.model"]
    provider = span_attrs["gen_ai.provider.name"]
    return float(calc_price(usage, model, provider_id=provider).total_price)


def test_every_instrumentation_counts_each_call_once(
    make_daemon: Callable[..., DaemonProcess],
    upstream: RecordingUpstream,
    stand_in: FakeProvider,
) -> None:
    config = forwarding(upstream)
    config["proxy"] = proxy_config(stand_in.url)
    config["slos"] = [
        {
            "name": "llm",
            "target": 0.99,
            "window": "30d",
            "sli": {"kind": "llm_success"},
            "labels": ["agent.id"],
        },
        cost_slo("cost-openai-once", 1.0e-4, OPENAI_IDS),
        cost_slo("cost-openai-some", 3.0e-5, OPENAI_IDS),
        cost_slo("cost-anthropic-once", 6.5e-4, ANTHROPIC_IDS),
        cost_slo("cost-anthropic-some", 2.0e-4, ANTHROPIC_IDS),
    ]
    daemon = make_daemon(config).start()

    for framework, propagate, stream in SCENARIOS:
        run_scenario(daemon, framework, propagate, stream)
    # One failed call is one bad event: a 500 the SDK retries twice (three attempts through
    # the proxy), and a 400 it does not retry.
    for agent_id, status in (("openai-v2-server-error", 500), ("openai-v2-bad-request", 400)):
        provider = agent_provider(daemon, agent_id)
        stand_in.status = status
        try:
            with instrumented("openai-v2", provider, False), pytest.raises(openai.APIStatusError):
                run_openai_sdk(daemon, provider, False, calls=1)
        finally:
            stand_in.status = 200
            provider.shutdown()
    calls = CALLS * len(SCENARIOS)
    attempts = calls + 3 + 1
    assert stand_in.calls == attempts

    # Every proxy span was claimed by the agent's span of its call (none waits for the hold).
    metrics = scrape(daemon.url("metrics", "/metrics"))
    assert metrics[("agent_sre_llm_calls_held", ())] == 0
    linked = sum(v for (n, _), v in metrics.items() if n == "agent_sre_llm_calls_linked_total")
    assert linked == calls + 2, daemon.log()  # + the failed calls' linked attempt each

    llm = events(metrics, "llm")
    for agent_id in OPENAI_IDS + ANTHROPIC_IDS:
        assert llm[agent_id] == {"good": CALLS, "bad": 0}, agent_id
    assert llm["openai-v2-server-error"] == {"good": 0, "bad": 1}
    assert llm["openai-v2-bad-request"] == {"good": 0, "bad": 1}
    assert sum(e["good"] + e["bad"] for e in llm.values()) == calls + 2
    assert metrics[("agent_sre_spans_total", (("kind", "LLM_INFERENCE"),))] == calls + 2

    # Each task's cost is its one call's: under the single-call threshold, over a third of it.
    for once, some, ids in (
        ("cost-openai-once", "cost-openai-some", OPENAI_IDS),
        ("cost-anthropic-once", "cost-anthropic-some", ANTHROPIC_IDS),
    ):
        judged_once, judged_some = events(metrics, once), events(metrics, some)
        for agent_id in ids:
            assert judged_once[agent_id] == {"good": CALLS, "bad": 0}, agent_id
            assert judged_some[agent_id] == {"good": 0, "bad": CALLS}, agent_id

    # Upstream: summing agent_sre.cost_usd over the forwarded spans gives the true spend, per
    # trace and in all; the proxy's span of each call is there, marked as the gateway's view.
    def forwarded_all() -> bool:
        gateways = [s for _, s in upstream.spans() if _role(s) == "gateway"]
        return len(gateways) == attempts

    assert upstream.wait_for(forwarded_all), daemon.log()
    spans = upstream.spans()
    by_trace: dict[bytes, list[dict[str, Any]]] = defaultdict(list)
    agent_of_trace: dict[bytes, str] = {}
    for resource, span in spans:
        span_attrs = attrs(span.attributes)
        by_trace[span.trace_id].append(span_attrs)
        agent_id = attrs(resource.attributes).get("agent.id")
        if agent_id:
            agent_of_trace[span.trace_id] = agent_id
    true_spend = 0.0
    for trace_id, trace_spans in by_trace.items():
        assert trace_id in agent_of_trace  # every proxy span joined its agent's trace
        gateways = [a for a in trace_spans if a.get("agent_sre.role") == "gateway"]
        spend = sum(price(a) for a in gateways if "gen_ai.usage.input_tokens" in a)
        summed = sum(a.get("agent_sre.cost_usd", 0.0) for a in trace_spans)
        assert summed == pytest.approx(spend, rel=1e-9), agent_of_trace[trace_id]
        true_spend += spend
        llm_spans = [
            a
            for a in trace_spans
            if a.get("agent.span.kind") == "LLM_INFERENCE" and "agent_sre.role" not in a
        ]
        for a in llm_spans:  # the event carries the proxy's facts
            assert a["agent_sre.proxy.route"] in ("openai", "anthropic")
            assert a["agent_sre.gateway.span_id"]
            assert a["agent_sre.budget.decision"] == "admitted"
        for a in gateways:
            assert "agent_sre.cost_usd" not in a
            assert a["agent.id"] == agent_of_trace[trace_id]
    assert sum(
        attrs(s.attributes).get("agent_sre.cost_usd", 0.0) for _, s in spans
    ) == pytest.approx(true_spend, rel=1e-9)
    spend_metric = sum(v for (n, _), v in metrics.items() if n == "agent_sre_llm_cost_usd_total")
    assert spend_metric == pytest.approx(true_spend, rel=1e-9)
    # streamed calls carry the time to first token on the event
    streamed = [
        a
        for t in by_trace.values()
        for a in t
        if a.get("agent_sre.gateway.span_id") and "agent_sre.ttft_seconds" in a
    ]
    assert len(streamed) == CALLS * len([s for s in SCENARIOS if s[2]])


def _role(span: Any) -> str | None:
    role = attrs(span.attributes).get("agent_sre.role")
    return role if isinstance(role, str) else None


def test_arrival_order_does_not_change_the_count(
    make_daemon: Callable[..., DaemonProcess],
    upstream: RecordingUpstream,
    stand_in: FakeProvider,
) -> None:
    """A hand-made agent span sent over OTLP before, just after, and long after (past the
    hold) the proxied call it describes: each call is one event."""
    config = forwarding(upstream)
    config["proxy"] = proxy_config(stand_in.url, hold="2s")
    config["slos"] = [
        {
            "name": "llm",
            "target": 0.99,
            "window": "30d",
            "sli": {"kind": "llm_success"},
            "labels": ["agent.id"],
        }
    ]
    daemon = make_daemon(config).start()
    client = openai.OpenAI(
        base_url=f"http://{daemon.addresses['proxy']}/openai/v1", api_key="sk-test"
    )
    messages = [{"role": "user", "content": "hi"}]

    def agent_span(agent_id: str, **attributes: Any) -> trace.Span:
        provider = agent_provider(daemon, agent_id, batch=False)
        tracer = provider.get_tracer("hand-made")
        return tracer.start_span(
            f"chat {OPENAI_MODEL}",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": OPENAI_MODEL,
                **attributes,
            },
        )

    # before: the agent's span reaches the daemon first; the call carries its traceparent
    before = agent_span("before")
    before.end(end_time=time.time_ns() + 5_000_000_000)
    context = before.get_span_context()
    traceparent = f"00-{context.trace_id:032x}-{context.span_id:016x}-01"
    client.chat.completions.create(
        model=OPENAI_MODEL, messages=messages, extra_headers={"traceparent": traceparent}
    )

    # just after: the call first, then the agent's span naming its response id
    after = agent_span("after")
    reply = client.chat.completions.create(model=OPENAI_MODEL, messages=messages)
    after.set_attribute("gen_ai.response.id", reply.id)
    after.end()

    # late: the hold (2s) ends first, so the proxy's span is the event; the agent's span
    # arriving after it is marked a duplicate
    late = agent_span("late")
    late_reply = client.chat.completions.create(
        model=OPENAI_MODEL, messages=messages, extra_headers={"X-Agent-Id": "late"}
    )
    time.sleep(3.0)
    late.set_attribute("gen_ai.response.id", late_reply.id)
    late.end()

    def settled() -> bool:
        return len(upstream.spans()) == 6

    assert upstream.wait_for(settled), daemon.log()
    llm = events(scrape(daemon.url("metrics", "/metrics")), "llm")
    assert llm["before"] == {"good": 1, "bad": 0}
    assert llm["after"] == {"good": 1, "bad": 0}
    assert llm["late"] == {"good": 1, "bad": 0}
    assert sum(e["good"] + e["bad"] for e in llm.values()) == 3
    roles = sorted(str(_role(s)) for _, s in upstream.spans())
    assert roles == ["None", "None", "None", "duplicate", "gateway", "gateway"]
    by_role = {_role(s): attrs(s.attributes) for _, s in upstream.spans() if _role(s)}
    assert by_role["duplicate"]["agent_sre.linked_by"] == "response_id"
    assert "agent_sre.cost_usd" not in by_role["duplicate"]
    metrics = scrape(daemon.url("metrics", "/metrics"))
    assert metrics[("agent_sre_llm_duplicate_spans_total", ())] == 1
    assert metrics[("agent_sre_spans_second_view_total", (("role", "gateway"),))] == 2
    slos = get(daemon.url("admin", "/v1/slos/llm"))
    assert slos["overall"]["events_good"] == 3


def test_proxy_only_agents_keep_their_task_cost_and_held_spans_survive_shutdown(
    make_daemon: Callable[..., DaemonProcess],
    upstream: RecordingUpstream,
    stand_in: FakeProvider,
) -> None:
    """An agent that sends only its task spans (with traceparent on its calls): the proxy's
    span is the event, released as soon as the task span containing it arrives, so the
    task's cost includes it. A proxy span still held at shutdown is released, not lost."""
    config = forwarding(upstream)
    config["proxy"] = proxy_config(stand_in.url, hold="10m")
    config["slos"] = [
        cost_slo("cost-once", 1.0e-4, ["proxy-only"]),
        cost_slo("cost-some", 3.0e-5, ["proxy-only"]),
        {"name": "llm", "target": 0.99, "window": "30d", "sli": {"kind": "llm_success"}},
    ]
    daemon = make_daemon(config).start()
    client = openai.OpenAI(
        base_url=f"http://{daemon.addresses['proxy']}/openai/v1", api_key="sk-test"
    )
    provider = agent_provider(daemon, "proxy-only", batch=False)
    tracer = provider.get_tracer("the-agent")
    with tracer.start_as_current_span(
        "invoke_agent support", attributes={"gen_ai.operation.name": "invoke_agent"}
    ) as task:
        context = task.get_span_context()
        client.chat.completions.create(
            model=OPENAI_MODEL,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"traceparent": f"00-{context.trace_id:032x}-{context.span_id:016x}-01"},
        )
    provider.shutdown()
    metrics = scrape(daemon.url("metrics", "/metrics"))
    assert events(metrics, "cost-once")["proxy-only"] == {"good": 1, "bad": 0}
    assert events(metrics, "cost-some")["proxy-only"] == {"good": 0, "bad": 1}
    assert metrics[("agent_sre_llm_calls_unlinked_total", (("reason", "task_ended"),))] == 1

    # a call nobody else describes waits for the (10 minute) hold; stopping releases it
    client.chat.completions.create(model=OPENAI_MODEL, messages=[{"role": "user", "content": "x"}])
    assert scrape(daemon.url("metrics", "/metrics"))[("agent_sre_llm_calls_held", ())] == 1
    assert daemon.stop() == 0
    proxy_spans = [s for _, s in upstream.spans() if "agent_sre.proxy.route" in attrs(s.attributes)]
    assert len(proxy_spans) == 2
    assert all("agent_sre.role" not in attrs(s.attributes) for s in proxy_spans)
    assert all(attrs(s.attributes)["agent_sre.cost_usd"] > 0 for s in proxy_spans)


def test_an_agent_starting_to_trace_after_a_quiet_spell_counts_each_call_once(
    make_daemon: Callable[..., DaemonProcess],
    upstream: RecordingUpstream,
    stand_in: FakeProvider,
) -> None:
    """No agent span came during a whole hold: the proxy's spans are the event at once (not
    held). An agent that then starts tracing: its first span describes a call already
    counted (a duplicate); from that span on the proxy's spans wait again, and its span of
    the next call is the event. Each call counts once throughout."""
    config = forwarding(upstream)
    config["proxy"] = proxy_config(stand_in.url, hold="1s")
    config["slos"] = [
        {
            "name": "llm",
            "target": 0.99,
            "window": "30d",
            "sli": {"kind": "llm_success"},
            "labels": ["agent.id"],
        }
    ]
    daemon = make_daemon(config).start()
    client = openai.OpenAI(
        base_url=f"http://{daemon.addresses['proxy']}/openai/v1", api_key="sk-test"
    )
    messages = [{"role": "user", "content": "hi"}]
    headers = {"X-Agent-Id": "starter"}

    def status() -> dict[str, Any]:
        return dict(get(daemon.url("admin", "/v1/status"))["correlation"])

    def unlinked(reason: str) -> float:
        metrics = scrape(daemon.url("metrics", "/metrics"))
        return metrics.get(("agent_sre_llm_calls_unlinked_total", (("reason", reason),)), 0.0)

    assert status()["holding"] is True  # at start: agents may trace
    client.chat.completions.create(model=OPENAI_MODEL, messages=messages, extra_headers=headers)
    deadline = time.monotonic() + 10
    while unlinked("hold_expired") < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert unlinked("hold_expired") == 1, daemon.log()
    assert status()["holding"] is False

    provider = agent_provider(daemon, "starter", batch=False)
    tracer = provider.get_tracer("hand-made")

    def agent_span() -> trace.Span:
        return tracer.start_span(
            f"chat {OPENAI_MODEL}",
            attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": OPENAI_MODEL},
        )

    # quiet: the call's span is the event at once; the agent's span of it comes after
    first = agent_span()
    reply = client.chat.completions.create(
        model=OPENAI_MODEL, messages=messages, extra_headers=headers
    )
    assert unlinked("quiet") == 1
    assert status()["held"] == 0
    first.set_attribute("gen_ai.response.id", reply.id)
    first.end()
    assert status()["holding"] is True

    # tracing again: held, and claimed by the agent's span
    second = agent_span()
    reply = client.chat.completions.create(
        model=OPENAI_MODEL, messages=messages, extra_headers=headers
    )
    assert status()["held"] == 1
    second.set_attribute("gen_ai.response.id", reply.id)
    second.end()
    provider.shutdown()

    def settled() -> bool:
        return len(upstream.spans()) == 5

    assert upstream.wait_for(settled), daemon.log()
    metrics = scrape(daemon.url("metrics", "/metrics"))
    assert events(metrics, "llm")["starter"] == {"good": 3, "bad": 0}
    assert metrics[("agent_sre_llm_duplicate_spans_total", ())] == 1
    assert (
        metrics[("agent_sre_llm_calls_linked_total", (("by", "response_id"), ("first", "proxy")))]
        == 1
    )
    roles = sorted(str(_role(s)) for _, s in upstream.spans())
    assert roles == ["None", "None", "None", "duplicate", "gateway"]
    by_role = {_role(s): attrs(s.attributes) for _, s in upstream.spans() if _role(s)}
    assert by_role["duplicate"]["gen_ai.response.id"] != by_role["gateway"]["gen_ai.response.id"]
    assert sum(
        attrs(s.attributes).get("agent_sre.cost_usd", 0.0) for _, s in upstream.spans()
    ) == pytest.approx(
        sum(v for (n, _), v in metrics.items() if n == "agent_sre_llm_cost_usd_total"), rel=1e-9
    )
