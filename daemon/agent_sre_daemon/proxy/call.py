"""One proxied call, from the request received to the span handed to the pipeline.

The story of a call: match a route (or refuse: no open proxy), read the request into a plan,
ask the gate (kill switch, rates, budgets), forward with the caller's credentials untouched,
pass the response through (streams chunk by chunk), then settle the cost and emit the span.
Settling happens in ``finally``: a client that goes away mid-stream is still charged for
what passed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from agent_sre.cost.guard import Denial
from agent_sre.cost.usage import TokenUsage, estimate_tokens
from agent_sre.tracing import conventions as conv
from agent_sre_daemon.proxy.errors import NOT_AN_OPEN_PROXY, error_response
from agent_sre_daemon.proxy.identity import call_identity, trace_context
from agent_sre_daemon.proxy.providers.plans import (
    CallPlan,
    ResponseFacts,
    facts_from_json,
    plan_call,
)
from agent_sre_daemon.proxy.providers.sse import StreamTap
from agent_sre_daemon.proxy.spans import (
    COST_ESTIMATED,
    COST_UNPRICED,
    TTFT_SECONDS,
    CallRecord,
    build_request,
    resource_of,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from agent_sre.config import ProxyRoute
    from agent_sre.cost.budgets import CallIdentity
    from agent_sre.cost.pricing import Pricer
    from agent_sre_daemon.proxy.gate import BudgetGate, Ticket
    from agent_sre_daemon.proxy.identity import TraceContext
    from agent_sre_daemon.proxy.metrics import ProxyMetrics

log = logging.getLogger("agent_sre.proxy")

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "expect",
        "host",
        "content-length",
    }
)
_DECODABLE = ("gzip", "deflate", "identity")
MAX_REQUEST_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Route:
    """A configured route with what is derived from it once at start."""

    config: ProxyRoute
    prefix: str
    upstream: str
    injected_key: str | None
    timeout: aiohttp.ClientTimeout


def make_route(config: ProxyRoute, environ: dict[str, str]) -> Route:
    key = environ.get(config.inject_api_key_env) if config.inject_api_key_env else None
    if config.inject_api_key_env and not key:
        log.warning(
            "route %s: inject_api_key_env %s is not set; calls go out with the caller's key",
            config.name,
            config.inject_api_key_env,
        )
    return Route(
        config=config,
        prefix="/" + config.prefix.strip("/"),
        upstream=config.upstream.rstrip("/"),
        injected_key=key or None,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10.0, sock_read=config.timeout),
    )


class Forwarder:
    """The proxy's single request handler."""

    def __init__(
        self,
        routes: list[Route],
        session: aiohttp.ClientSession,
        gate: BudgetGate,
        pricer: Pricer,
        metrics: ProxyMetrics,
        span_sink: Callable[[ExportTraceServiceRequest], None],
        resource: dict[str, str],
    ) -> None:
        self._routes = sorted(routes, key=lambda route: len(route.prefix), reverse=True)
        self._session = session
        self._gate = gate
        self._pricer = pricer
        self._metrics = metrics
        self._sink = span_sink
        self._resource = resource_of(resource)
        self.background: set[asyncio.Task[None]] = set()

    def reload(self, routes: list[Route], pricer: Pricer) -> None:
        """New routes and prices for calls that start from now on."""
        self._routes = sorted(routes, key=lambda route: len(route.prefix), reverse=True)
        self._pricer = pricer

    def match(self, path: str) -> Route | None:
        for route in self._routes:
            if path == route.prefix or path.startswith(route.prefix + "/"):
                return route
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        if request.method == "CONNECT" or not request.raw_path.startswith("/"):
            return error_response("passthrough", "route_not_found", NOT_AN_OPEN_PROXY, status=400)
        path, _, query = request.raw_path.partition("?")
        route = self.match(path)
        if route is None:
            return error_response(
                "passthrough", "route_not_found", f"no proxy route for {request.path!r}"
            )
        body = await request.read()
        rest = path[len(route.prefix) :]
        plan = plan_call(route.config, request.method, rest, body)
        call = Call(self, route, request, plan, started)
        return await call.run(rest, query)

    def emit(self, record: CallRecord, trace: TraceContext) -> None:
        try:
            self._sink(build_request(record, trace, self._resource))
        except Exception:  # the pipeline must never break a call
            log.exception("span sink failed")


class Call:
    """The state of one call in flight."""

    def __init__(
        self,
        owner: Forwarder,
        route: Route,
        request: web.Request,
        plan: CallPlan,
        started: float,
    ) -> None:
        self.owner = owner
        self.route = route
        self.request = request
        self.plan = plan
        self.started = started
        self.who: CallIdentity = call_identity(request.headers)
        self.trace = trace_context(request.headers)
        self.record = CallRecord(
            route.config.name, _kind(plan), _span_name(plan, request), time.time_ns()
        )
        self.facts = ResponseFacts()
        self.status = 0
        self.ttft: float | None = None
        self.added = 0.0
        self.streamed = False
        self.ticket: Ticket | None = None
        self.reached_upstream = False
        self.refused = False

    async def run(self, rest: str, query: str) -> web.StreamResponse:
        gate = self.owner._gate
        outcome = await gate.admit(self.plan, self.who, time.time())
        if isinstance(outcome, Denial):
            return self._refuse(outcome)
        self.ticket = outcome
        if self.ticket.who is not self.who:
            self.who = self.ticket.who
        url = self.route.upstream + rest + (f"?{query}" if query else "")
        try:
            return await self._forward(url)
        finally:
            await self._settle_safely()

    def _refuse(self, denial: Denial) -> web.Response:
        response = error_response(
            self.route.config.api, denial.kind, denial.message, denial.retry_after
        )
        self.status = response.status
        self.refused = True
        self.record.error = denial.kind
        self.record.error_message = denial.message
        self._finish_record(0.0, None)
        return response

    async def _forward(self, url: str) -> web.StreamResponse:
        headers = self._upstream_headers()
        session = self.owner._session
        self.added = time.perf_counter() - self.started
        try:
            upstream_cm = session.request(
                self.request.method,
                URL(url, encoded=True),
                headers=headers,
                data=self.plan.body or None,
                allow_redirects=False,
                timeout=self.route.timeout,
                auto_decompress=False,
            )
            async with upstream_cm as upstream:
                self.reached_upstream = True
                self.status = upstream.status
                content_type = upstream.content_type
                if content_type == "text/event-stream":
                    return await self._stream(upstream, parse=True)
                if _is_json(content_type) or _small(upstream):
                    return await self._whole(upstream)
                return await self._stream(upstream, parse=False)
        except asyncio.TimeoutError:
            return self._upstream_failed(
                "upstream_timeout", f"upstream {self.route.config.name} timed out"
            )
        except aiohttp.ClientError as exc:
            return self._upstream_failed(
                "upstream_unreachable",
                f"upstream {self.route.config.name} unreachable: {type(exc).__name__}",
            )

    def _upstream_failed(self, kind: str, message: str) -> web.StreamResponse:
        if self.streamed:  # headers already sent: all we can do is cut the stream
            self.record.error = kind
            self.record.error_message = message
            raise ConnectionResetError(message)
        response = error_response(self.route.config.api, kind, message)
        self.status = response.status
        self.record.error = kind
        self.record.error_message = message
        return response

    def _upstream_headers(self) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict()
        for name, value in self.request.headers.items():
            if name.lower() not in HOP_BY_HOP:
                headers.add(name, value)
        headers["traceparent"] = self.trace.traceparent()
        if self.plan.stream:
            headers["Accept-Encoding"] = "identity"
        elif "Accept-Encoding" in headers:
            wanted = [
                part.strip()
                for part in headers["Accept-Encoding"].split(",")
                if part.split(";")[0].strip().lower() in _DECODABLE
            ]
            headers["Accept-Encoding"] = ", ".join(wanted) or "identity"
        key = self.route.injected_key
        if key is not None:
            if self.route.config.api == "anthropic":
                headers.pop("Authorization", None)
                headers["x-api-key"] = key
            else:
                headers.pop("x-api-key", None)
                headers["Authorization"] = f"Bearer {key}"
        return headers

    def _response_headers(self, upstream: aiohttp.ClientResponse) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict()
        for name, value in upstream.headers.items():
            if name.lower() not in HOP_BY_HOP:
                headers.add(name, value)
        return headers

    async def _whole(self, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
        body = await upstream.read()
        mark = time.perf_counter()
        response = web.Response(
            status=upstream.status,
            reason=upstream.reason,
            body=body,
            headers=self._response_headers(upstream),
        )
        if self.plan.operation is not None and _is_json(upstream.content_type):
            self.facts = facts_from_json(self.plan, _decoded(body, upstream))
        self.added += time.perf_counter() - mark
        return response

    async def _stream(self, upstream: aiohttp.ClientResponse, parse: bool) -> web.StreamResponse:
        """Relays the body as it arrives; ``parse`` taps server-sent events for usage."""
        mark = time.perf_counter()
        response = web.StreamResponse(
            status=upstream.status, reason=upstream.reason, headers=self._response_headers(upstream)
        )
        tap = StreamTap(self.plan) if parse else None
        if tap is not None:
            self.facts = tap.facts
        await response.prepare(self.request)
        self.streamed = True
        self.added += time.perf_counter() - mark
        try:
            async for chunk in upstream.content.iter_any():
                out = tap.feed(chunk) if tap is not None else chunk
                if out:
                    if self.ttft is None:
                        self.ttft = time.perf_counter() - self.started
                    await response.write(out)
            rest = tap.finish() if tap is not None else b""
            if rest:
                await response.write(rest)
            await response.write_eof()
        except (ConnectionResetError, aiohttp.ClientConnectionResetError) as exc:
            if tap is not None:
                tap.finish()
            self.record.error = "client_disconnected"
            self.record.error_message = f"client went away mid-stream ({type(exc).__name__})"
            log.info("route %s: client left a stream early", self.route.config.name)
        except (aiohttp.ClientPayloadError, asyncio.TimeoutError) as exc:
            if tap is not None:
                tap.finish()
            self.record.error = "upstream_stream_error"
            self.record.error_message = type(exc).__name__
            # Cut the client's connection too: ending the chunked body cleanly would make a
            # truncated stream look complete.
            if self.request.transport is not None:
                self.request.transport.abort()
        return response

    async def _settle_safely(self) -> None:
        # A cancelled handler still settles: the reservation must never leak.
        task = asyncio.ensure_future(self._settle())
        self.owner.background.add(task)
        task.add_done_callback(self.owner.background.discard)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("settling a call failed")

    async def _settle(self) -> None:
        now = time.time()
        cost = self._cost(now)
        if self.ticket is not None:
            await self.owner._gate.settle(self.ticket, cost or 0.0, now)
        self._finish_record(cost or 0.0, cost)

    def _usage(self) -> TokenUsage | None:
        """Usage as reported, or estimated from what passed (never zero once it reached
        the provider with a success status)."""
        facts = self.facts
        if facts.usage is not None and facts.usage_final:
            return facts.usage
        if not self.reached_upstream or not 200 <= self.status < 300:
            return facts.usage
        base = facts.usage or TokenUsage()
        return TokenUsage(
            input_tokens=base.input_tokens or self.plan.input_tokens_estimate,
            output_tokens=max(base.output_tokens, estimate_tokens(facts.output_chars)),
            cache_read_tokens=base.cache_read_tokens,
            cache_write_tokens=base.cache_write_tokens,
            estimated=True,
        )

    def _cost(self, now: float) -> float | None:
        if not self.plan.priced:
            return None
        usage = self._usage()
        if usage is None:
            return 0.0
        self.facts.usage = usage
        pricer = self.owner._pricer
        model = self.facts.response_model or self.plan.model
        cost = pricer.price(self.plan.provider, model, usage, now)
        if cost is None and model != self.plan.model:
            cost = pricer.price(self.plan.provider, self.plan.model, usage, now)
        return cost

    def _finish_record(self, cost: float, priced: float | None) -> None:
        plan, record, facts, metrics = self.plan, self.record, self.facts, self.owner._metrics
        elapsed = time.perf_counter() - self.started
        route = self.route.config.name
        record.end_ns = record.start_ns + int(elapsed * 1e9)
        attrs = record.attributes
        attrs["http.request.method"] = self.request.method
        if self.status:
            attrs["http.response.status_code"] = self.status
        if record.error is None and self.status >= 400:
            record.error = str(self.status)
            record.error_message = f"upstream answered {self.status}"
        if record.error is None and facts.tool_error is not None:
            record.error = "tool_error"
            record.error_message = facts.tool_error
        self._identity_attributes(attrs)
        if plan.operation is not None:
            attrs[conv.GEN_AI_OPERATION_NAME] = plan.operation
        if plan.tool_name is not None:
            attrs[conv.GEN_AI_TOOL_NAME] = plan.tool_name
        if plan.provider:
            attrs[conv.GEN_AI_PROVIDER_NAME] = plan.provider
        if plan.model:
            attrs[conv.GEN_AI_REQUEST_MODEL] = plan.model
            attrs["gen_ai.request.stream"] = plan.stream
            if plan.max_output_tokens:
                attrs["gen_ai.request.max_tokens"] = plan.max_output_tokens
        if facts.response_model:
            attrs[conv.GEN_AI_RESPONSE_MODEL] = facts.response_model
        if facts.response_id:
            attrs[conv.GEN_AI_RESPONSE_ID] = facts.response_id
        if plan.priced:
            decision = (record.error or "refused") if self.refused else "admitted"
            attrs[conv.AGENT_SRE_BUDGET_DECISION] = decision
        usage = facts.usage
        model = facts.response_model or plan.model or "unknown"
        agent = self.who.agent_id or "unknown"
        if usage is not None and plan.priced:
            attrs[conv.GEN_AI_USAGE_INPUT_TOKENS] = usage.input_tokens
            attrs[conv.GEN_AI_USAGE_OUTPUT_TOKENS] = usage.output_tokens
            if usage.cache_read_tokens:
                attrs["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read_tokens
            if usage.cache_write_tokens:
                attrs["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
            attrs[COST_ESTIMATED] = usage.estimated
            metrics.llm_usage(
                agent,
                model,
                usage.input_tokens,
                usage.output_tokens,
                None if priced is None else cost,
            )
            if usage.estimated:
                metrics.estimated.labels(route).inc()
            if priced is None:
                attrs[COST_UNPRICED] = True
                metrics.unpriced_call(model)
            else:
                attrs[conv.AGENT_SRE_COST_USD] = cost
        if self.ttft is not None:
            attrs[TTFT_SECONDS] = self.ttft
            metrics.ttft.labels(route).observe(self.ttft)
        metrics.call_done(
            route, self.status, elapsed, self.added if self.reached_upstream else None
        )
        self.owner.emit(record, self.trace)

    def _identity_attributes(self, attrs: dict[str, str | int | float | bool]) -> None:
        who = self.who
        if who.agent_id:
            attrs[conv.AGENT_ID] = who.agent_id
        if who.task_id:
            attrs[conv.AGENT_TASK_ID] = who.task_id
        if who.agent_version:
            attrs[conv.AGENT_VERSION] = who.agent_version
        if who.team:
            attrs["agent.team"] = who.team


def _kind(plan: CallPlan) -> str | None:
    if plan.operation == "execute_tool":
        return conv.AgentSpanKind.TOOL_CALL.value
    if plan.operation is not None:
        return conv.AgentSpanKind.LLM_INFERENCE.value
    return None


def _span_name(plan: CallPlan, request: web.Request) -> str:
    if plan.operation == "execute_tool":
        return f"execute_tool {plan.tool_name}"
    if plan.operation is not None:
        return f"{plan.operation} {plan.model}".strip()
    return request.method


WHOLE_BODY_LIMIT = 1024 * 1024
"""Non-JSON responses up to this size (by Content-Length) are relayed in one piece; larger
or unsized ones are streamed through as they arrive."""


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


def _small(upstream: aiohttp.ClientResponse) -> bool:
    length = upstream.content_length
    return length is not None and length <= WHOLE_BODY_LIMIT


def _decoded(body: bytes, upstream: aiohttp.ClientResponse) -> bytes:
    encoding = upstream.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return body
    try:
        return zlib.decompress(body, 47) if encoding in ("gzip", "deflate") else b""
    except zlib.error:
        return b""
