"""Fixtures: the stand-in provider and a ProxyServer in-process, both on port 0."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client import CollectorRegistry

from agent_sre.config import Config
from agent_sre_daemon.clock import SYSTEM_CLOCK, Clock
from agent_sre_daemon.component import NodeContext
from agent_sre_daemon.metrics import PipelineMetrics
from agent_sre_daemon.proxy.server import ProxyServer
from agent_sre_daemon.signals import SignalBus
from tests.fakes.provider import FakeProvider

if TYPE_CHECKING:
    from pathlib import Path

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


class SpanSink:
    """Stands in for the node's pipeline: keeps the proxy's spans (or fails, when told)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.spans: list[ExportTraceServiceRequest] = []
        self.metrics = PipelineMetrics(registry)
        self.fail: Exception | None = None

    def export_proxy_call(
        self, request: ExportTraceServiceRequest, attrs: dict[str, Any] | None = None
    ) -> None:
        if self.fail is not None:
            raise self.fail
        self.spans.append(request)


@dataclass
class RunningProxy:
    server: ProxyServer
    url: str
    spans: list[ExportTraceServiceRequest]
    registry: CollectorRegistry
    state_dir: Path
    sink: SpanSink
    bus: SignalBus
    extra: dict[str, Any] = field(default_factory=dict)

    def signal_types(self) -> list[str]:
        """Types of the signals the cost guard published, oldest first."""
        return [signal.type for signal in self.bus.recent(source="budgets")]

    def span_attrs(self, index: int = -1) -> dict[str, Any]:
        span = self.spans[index].resource_spans[0].scope_spans[0].spans[0]
        out: dict[str, Any] = {}
        for kv in span.attributes:
            out[kv.key] = getattr(kv.value, kv.value.WhichOneof("value"))
        return out

    def span(self, index: int = -1) -> Any:
        return self.spans[index].resource_spans[0].scope_spans[0].spans[0]

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        value = self.registry.get_sample_value(name, labels or {})
        return 0.0 if value is None else value


@pytest.fixture
async def provider() -> AsyncIterator[FakeProvider]:
    fake = FakeProvider(unique_ids=False)  # answers compared byte for byte with direct ones
    await fake.start()
    yield fake
    await fake.stop()


def proxy_config(provider_url: str, **sections: Any) -> Config:
    routes = [
        {"name": "openai", "prefix": "/openai", "upstream": provider_url, "api": "openai"},
        {"name": "anthropic", "prefix": "/anthropic", "upstream": provider_url, "api": "anthropic"},
        {
            "name": "search",
            "prefix": "/tools/search",
            "upstream": provider_url + "/tool",
            "api": "tool",
            "tool": "web_search",
        },
        {"name": "mcp", "prefix": "/mcp-files", "upstream": provider_url, "api": "mcp"},
        {"name": "raw", "prefix": "/raw", "upstream": provider_url, "api": "passthrough"},
    ]
    extra_routes = sections.pop("routes", [])
    data: dict[str, Any] = {
        "node": {"name": "test-node"},
        "proxy": {"endpoint": "127.0.0.1:0", "routes": routes + extra_routes},
        **sections,
    }
    return Config.model_validate(data)


ProxyFactory = Callable[..., Awaitable[RunningProxy]]


@pytest.fixture
async def make_proxy(provider: FakeProvider, tmp_path: Path) -> AsyncIterator[ProxyFactory]:
    started: list[ProxyServer] = []

    async def factory(
        state_dir: Path | None = None,
        clock: Clock = SYSTEM_CLOCK,
        stages: list[Any] | None = None,
        **sections: Any,
    ) -> RunningProxy:
        directory = state_dir or tmp_path / "state"
        config = proxy_config(provider.url, state_dir=str(directory), **sections)
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
            stages=list(stages or []),
        )
        server = ProxyServer(context)
        address = (await server.start())["proxy"]
        started.append(server)
        return RunningProxy(server, f"http://{address}", sink.spans, registry, directory, sink, bus)

    yield factory
    for server in started:
        await server.stop()


@pytest.fixture
async def proxy(make_proxy: ProxyFactory) -> RunningProxy:
    return await make_proxy()


@pytest.fixture
async def odd() -> AsyncIterator[Any]:
    from tests.proxy.odd_upstream import OddUpstream

    upstream = OddUpstream()
    await upstream.start()
    yield upstream
    await upstream.stop()
