"""A circuit breaker on real proxied calls to the stand-in provider, driven by a fake clock:
it opens on the error ratio, fails fast in the provider's shape with a status the SDK does
not retry, half-opens after the cool-down, closes on a good probe; its state changes are
signals and a gauge."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anthropic
import openai
import pytest
from prometheus_client import CollectorRegistry

from agent_sre.incidents.spec import CircuitBreakerSpec
from agent_sre_daemon.clock import ManualClock
from agent_sre_daemon.incidents.breaker import CircuitBreakerStage
from agent_sre_daemon.incidents.metrics import IncidentMetrics
from agent_sre_daemon.signals import SignalBus

if TYPE_CHECKING:
    from tests.fakes.provider import FakeProvider
    from tests.proxy.conftest import ProxyFactory

MESSAGES = [{"role": "user", "content": "hi"}]


def breaker(clock: ManualClock, **spec: object) -> tuple[CircuitBreakerStage, SignalBus]:
    registry = CollectorRegistry()
    bus = SignalBus(registry)
    settings = {"name": "upstreams", "error_ratio": 0.5, "min_calls": 4, "window": "60s",
                "open_for": "30s", **spec}  # fmt: skip
    stage = CircuitBreakerStage(
        [CircuitBreakerSpec.model_validate(settings)], clock, bus, IncidentMetrics(registry)
    )
    return stage, bus


async def test_a_breaker_opens_fails_fast_half_opens_and_closes(
    make_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    clock = ManualClock()
    stage, bus = breaker(clock)
    proxy = await make_proxy(clock=clock, stages=[stage])
    client = openai.AsyncOpenAI(base_url=f"{proxy.url}/openai/v1", api_key="sk-x", max_retries=2)

    # two good calls, then the upstream fails: the 4th call makes 2 of 4 -> open
    for _ in range(2):
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    provider.status = 500
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await client.with_options(max_retries=0).chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES
            )
    assert stage.circuits[("upstreams", "route:openai")].state.value == "open"
    reached = provider.calls

    # open: failed fast, in OpenAI's shape, not retried by the SDK, upstream untouched
    with pytest.raises(openai.PermissionDeniedError) as refused:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert refused.value.status_code == 403
    assert refused.value.response.headers["x-agent-sre-error"] == "circuit_open"
    assert refused.value.response.headers["retry-after"] == "30"
    body = refused.value.body
    assert isinstance(body, dict)
    assert body["type"] == "circuit_open"
    assert provider.calls == reached  # one attempt, answered by the proxy (max_retries=2)
    assert proxy.span_attrs()["error.type"] == "circuit_open"

    # the other routes have circuits of their own
    provider.status = 200
    other = anthropic.AsyncAnthropic(base_url=f"{proxy.url}/anthropic", api_key="sk-x")
    await other.messages.create(model="claude-3-5-haiku-latest", max_tokens=8, messages=MESSAGES)

    # the cool-down passes: one probe goes through; while it runs, others still fail fast
    clock.advance(31)
    provider.status = 500
    with pytest.raises(openai.InternalServerError):
        await client.with_options(max_retries=0).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES
        )
    assert stage.circuits[("upstreams", "route:openai")].state.value == "open"  # probe failed
    clock.advance(31)
    provider.status = 200
    await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert stage.circuits[("upstreams", "route:openai")].state.value == "closed"
    await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    changes = [
        (s.details["old"], s.details["new"], s.state.value)
        for s in bus.recent(source="circuit_breaker")
    ]
    assert changes == [
        ("closed", "open", "firing"),
        ("open", "half_open", "firing"),
        ("half_open", "open", "firing"),
        ("open", "half_open", "firing"),
        ("half_open", "closed", "resolved"),
    ]
    opened = bus.recent(source="circuit_breaker")[0]
    assert opened.labels == {"breaker": "upstreams", "target": "route:openai", "route": "openai"}
    assert opened.severity.value == "critical"
    # the failed calls' traces, for the incident (and replay)
    failed_traces = opened.details["trace_ids"]
    assert len(failed_traces) == 2
    assert all(len(t) == 32 for t in failed_traces)
    gauge = stage.metrics.circuit_state.labels("route:openai")._value.get()
    assert gauge == 0
    assert stage.metrics.circuit_rejected.labels("route:openai")._value.get() == 1


async def test_breakers_per_agent_and_client_errors_do_not_count(
    make_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    clock = ManualClock()
    stage, _ = breaker(clock, per="agent", min_calls=2, error_ratio=0.4)
    proxy = await make_proxy(clock=clock, stages=[stage])
    client = openai.AsyncOpenAI(base_url=f"{proxy.url}/openai/v1", api_key="sk-x", max_retries=0)

    provider.status = 400  # the caller's own mistake: a call that worked, for the circuit
    for _ in range(3):
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Agent-Id": "a1"}
            )
    assert stage.circuits[("upstreams", "agent:a1")].state.value == "closed"

    provider.status = 503
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Agent-Id": "a1"}
            )
    provider.status = 200
    with pytest.raises(openai.PermissionDeniedError):
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Agent-Id": "a1"}
        )
    # another agent, and calls without an agent, are not affected
    await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Agent-Id": "a2"}
    )
    await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    # the window forgets old failures
    clock.advance(120)
    assert stage.circuits[("upstreams", "agent:a2")].counts(clock.time()) == (0, 0)


async def test_a_rule_can_open_a_circuit_and_unconfigured_breakers_do_nothing(
    make_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    clock = ManualClock()
    stage, bus = breaker(clock)
    proxy = await make_proxy(clock=clock, stages=[stage])
    assert stage.force_open("route:openai", "opened by a rule") == ["upstreams"]
    assert stage.force_open("tool:search", "no breaker per tool") == []
    client = openai.AsyncOpenAI(base_url=f"{proxy.url}/openai/v1", api_key="sk-x", max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    stage.apply([])  # reloaded without breakers: every call goes through
    await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert [s.details["new"] for s in bus.recent(source="circuit_breaker")] == ["open"]
