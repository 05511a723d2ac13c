"""A toy engine that joins the daemon through the public seams only: an entry point in the
``agent_sre.components`` group, the Component protocol, a span observer, a proxy stage, a
metric, an admin route and a signal. Used by tests/integration/test_engine_seams.py."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

from aiohttp import web
from prometheus_client import Counter

from agent_sre.signals import Severity, Signal
from agent_sre_daemon.component import Component, Prepared, SpanObserverSpec

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from agent_sre.config import Config
    from agent_sre.tracing.view import AgentSpan
    from agent_sre_daemon.component import NodeContext
    from agent_sre_daemon.proxy.call import Call


class ToyStage:
    """Answers calls that carry ``X-Toy-Answer`` itself; counts the others on their way."""

    name = "toy"
    slot = "faults"

    def __init__(self, engine: ToyEngine) -> None:
        self.engine = engine

    async def on_request(self, call: Call) -> web.StreamResponse | None:
        self.engine.calls_in += 1
        if call.request.headers.get("X-Toy-Answer"):
            return web.json_response({"answered_by": "toy"}, status=418)
        return None

    async def on_response(self, call: Call) -> None:
        self.engine.calls_out += 1


class ToyEngine(Component):
    name: ClassVar[str] = "toy"
    title: ClassVar[str] = "Toy engine"

    def __init__(self, context: NodeContext) -> None:
        self.context = context
        self.counter = self.register_metrics(context.registry)
        self.started = False
        self.reloads = 0
        self.spans = 0
        self.calls_in = 0
        self.calls_out = 0

    @classmethod
    def register_metrics(cls, registry: CollectorRegistry) -> Counter:
        return Counter("toy_engine_spans", "Spans the toy engine saw.", registry=registry)

    async def start(self) -> dict[str, str]:
        self.started = True
        return {}

    async def stop(self, deadline: float) -> None:
        left = deadline - self.context.clock.monotonic()
        marker = self.context.state_dir / "toy-stopped.json"
        marker.write_text(json.dumps({"seconds_left": left, "spans": self.spans}))

    async def prepare_reload(self, new: Config) -> Prepared:
        async def commit() -> None:
            self.reloads += 1
            self.context.bus.publish(
                Signal(
                    type="toy_reloaded",
                    source="toy",
                    severity=Severity.INFO,
                    at=self.context.clock.time(),
                    message=f"toy engine reloaded ({self.reloads})",
                    labels={"engine": "toy"},
                    value=float(self.reloads),
                )
            )

        return Prepared(commit=commit)

    def span_observers(self) -> list[SpanObserverSpec]:
        return [SpanObserverSpec(self._observe, frozenset())]

    def proxy_stages(self) -> list[Any]:
        return [ToyStage(self)]

    def admin_routes(self) -> list[web.RouteDef]:
        return [web.get("/v1/toy", self._show), web.post("/v1/toy/block/{agent}", self._block)]

    async def _block(self, request: web.Request) -> web.Response:
        # another component's operation, reached by name through the node's context
        done = await self.context.actions["block_agent"]({"agent_id": request.match_info["agent"]})
        return web.json_response({"done": done})

    def status(self) -> dict[str, Any]:
        return {"toy": {"started": self.started}}

    def _observe(self, span: AgentSpan, now: float) -> None:
        self.spans += 1
        self.counter.inc()

    async def _show(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "started": self.started,
                "reloads": self.reloads,
                "spans": self.spans,
                "calls_in": self.calls_in,
                "calls_out": self.calls_out,
                "services": sorted(self.context.services),
                "actions": sorted(self.context.actions),
            }
        )
