"""An in-process rig: the stand-in provider, the delivery component and the proxy sharing one
node context and one clock whose wall time the test moves (steps) while its monotonic time
is real (latencies)."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import openai
import pytest
from prometheus_client import CollectorRegistry

from agent_sre_daemon.clock import ManualClock
from agent_sre_daemon.component import NodeContext
from agent_sre_daemon.delivery.runtime import DeliveryRuntime
from agent_sre_daemon.proxy.server import ProxyServer
from agent_sre_daemon.signals import SignalBus
from tests.fakes.provider import FakeProvider, ModelQuality
from tests.proxy.conftest import SpanSink, proxy_config

if TYPE_CHECKING:
    from pathlib import Path

BASE, CAND = "gpt-4o", "gpt-4.1"


class StepClock(ManualClock):
    """Wall time moves when the test says; monotonic time is real, so latencies are."""

    def monotonic(self) -> float:
        return time.monotonic() + self.mono


@dataclass
class Rig:
    delivery: DeliveryRuntime
    proxy: ProxyServer
    url: str
    clock: StepClock
    registry: CollectorRegistry
    bus: SignalBus
    sink: SpanSink
    context: NodeContext
    provider: FakeProvider
    stopped: bool = False
    _client: openai.AsyncOpenAI | None = None

    async def stop(self) -> None:
        """Stops the proxy, then the delivery component (it saves its state)."""
        if not self.stopped:
            self.stopped = True
            if self._client is not None:
                await self._client.close()
            await self.proxy.stop()
            await self.delivery.stop(self.clock.monotonic() + 5)

    def client(self, **headers: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=self.url + "/openai/v1",
            api_key="sk-rollout",
            max_retries=0,
            default_headers=headers,
        )

    async def ask(self, task: str | None, model: str = BASE, **headers: str) -> str:
        """One chat call as task ``task``; the model that answered, or ``error``."""
        if task is not None:
            headers["X-Agent-Task-Id"] = task
        if self._client is None:
            self._client = self.client()
        try:
            reply = await self._client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}], extra_headers=headers
            )
        except openai.APIStatusError:
            return "error"
        return reply.model

    async def calls_until(self, rollout: str, samples: int, limit: int = 2000) -> int:
        """Calls with fresh task ids until each variant has ``samples`` calls this step."""
        made = 0
        running = self.delivery.rollouts[rollout]
        while made < limit:
            counts = [s.calls for s in running.samples.values()]
            if min(counts) >= samples:
                return made
            await self.ask(f"task-{os.urandom(6).hex()}")
            made += 1
        raise AssertionError(f"{rollout}: fewer than {samples} samples after {limit} calls")

    def signals(self) -> list[str]:
        return [s.type for s in self.bus.recent(source="delivery")]

    def metric(self, name: str, labels: dict[str, str]) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def span_attrs(self) -> list[dict[str, Any]]:
        out = []
        for request in self.sink.spans:
            span = request.resource_spans[0].scope_spans[0].spans[0]
            out.append(
                {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in span.attributes}
            )
        return out


RigFactory = Callable[..., Awaitable[Rig]]


def rollout(**overrides: Any) -> dict[str, Any]:
    """A model rollout of the ``openai`` route: gpt-4o -> gpt-4.1."""
    spec: dict[str, Any] = {
        "name": "canary",
        "route": "openai",
        "baseline": BASE,
        "candidate": CAND,
        "steps": [{"weight": 50, "duration": "10m"}, {"weight": 100, "duration": "10m"}],
        "analysis": {
            "min_samples": 20,
            "checks": [{"metric": "success_ratio", "max_relative_change": 0.05}],
        },
    }
    spec.update(overrides)
    return spec


@pytest.fixture
async def provider() -> AsyncIterator[FakeProvider]:
    fake = FakeProvider()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def make_rig(provider: FakeProvider, tmp_path: Path) -> AsyncIterator[RigFactory]:
    running: list[Rig] = []

    async def factory(
        *rollouts: dict[str, Any],
        clock: StepClock | None = None,
        state_dir: Path | None = None,
        services: dict[str, object] | None = None,
        **sections: Any,
    ) -> Rig:
        clock = clock or StepClock()
        config = proxy_config(
            provider.url,
            state_dir=str(state_dir or tmp_path / "state"),
            rollouts={"rollouts": list(rollouts)},
            **sections,
        )
        registry = CollectorRegistry()
        sink = SpanSink(registry)
        bus = SignalBus(registry)
        context = NodeContext(
            config=config,
            clock=clock,
            registry=registry,
            bus=bus,
            pipeline=sink,  # type: ignore[arg-type]
            environ=os.environ,
            node_name="test-node",
        )
        for name, service in (services or {}).items():
            context.provide(name, service)
        delivery = DeliveryRuntime(context)
        context.stages = delivery.proxy_stages()
        proxy = ProxyServer(context)
        await delivery.start()
        address = (await proxy.start())["proxy"]
        rig = Rig(
            delivery, proxy, f"http://{address}", clock, registry, bus, sink, context, provider
        )
        running.append(rig)
        return rig

    yield factory
    for rig in running:
        await rig.stop()


__all__ = ["BASE", "CAND", "ModelQuality", "Rig", "RigFactory", "StepClock", "rollout"]
