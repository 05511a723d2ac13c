"""The call's span and metrics, written last on the way back (so refusals, faults and
upstream failures are recorded too: this stage is entered first, before anyone answers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_sre.tracing import conventions as conv
from agent_sre_daemon.proxy.spans import (
    COST_ESTIMATED,
    COST_UNPRICED,
    DECIDED_BY,
    TTFT_SECONDS,
    USAGE_INVALID,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from aiohttp import web

    from agent_sre.gateway.identity import TraceContext
    from agent_sre_daemon.clock import Clock
    from agent_sre_daemon.proxy.call import Call
    from agent_sre_daemon.proxy.metrics import ProxyMetrics
    from agent_sre_daemon.proxy.spans import CallRecord
    from agent_sre_daemon.proxy.stage import StageSlot


class RecordStage:
    name = "record"
    slot: StageSlot = "record"

    def __init__(
        self,
        metrics: ProxyMetrics,
        clock: Clock,
        emit: Callable[[CallRecord, TraceContext | None], None],
    ) -> None:
        self._metrics = metrics
        self._clock = clock
        self._emit = emit

    async def on_request(self, call: Call) -> web.StreamResponse | None:
        return None

    # hot path: per proxied call
    async def on_response(self, call: Call) -> None:
        plan, record, facts, metrics = call.plan, call.record, call.facts, self._metrics
        elapsed = self._clock.monotonic() - call.started
        route = call.route.name
        status = call.status
        record.end_ns = record.start_ns + int(elapsed * 1e9)
        attrs = record.attributes
        attrs["http.request.method"] = call.request.method
        if status:
            attrs["http.response.status_code"] = status
        if call.decided_by is not None:
            attrs[DECIDED_BY] = call.decided_by.value
        if record.error is None and status >= 400:
            call.fail(str(status), f"upstream answered {status}")
        if record.error is None and facts.tool_error is not None:
            call.fail("tool_error", facts.tool_error)
        who = call.identity
        if who.agent_id:
            attrs[conv.AGENT_ID] = who.agent_id
        if who.task_id:
            attrs[conv.AGENT_TASK_ID] = who.task_id
        if who.agent_version:
            attrs[conv.AGENT_VERSION] = who.agent_version
        if who.team:
            attrs["agent.team"] = who.team
        if plan.operation is not None:
            attrs[conv.GEN_AI_OPERATION_NAME] = plan.operation
        if plan.tool_name is not None:
            attrs[conv.GEN_AI_TOOL_NAME] = plan.tool_name
            if plan.api == "mcp" and plan.operation == "execute_tool":
                attrs[conv.MCP_METHOD_NAME] = conv.MCP_TOOLS_CALL
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
            decision = (record.error or "refused") if call.refused else "admitted"
            attrs[conv.AGENT_SRE_BUDGET_DECISION] = decision
        # usage is what the provider spent: a replayed recording's figures spent nothing
        usage = facts.usage if call.reached_upstream else None
        if usage is not None and plan.priced:
            cost = call.cost
            model = facts.response_model or plan.model or "unknown"
            attrs[conv.GEN_AI_USAGE_INPUT_TOKENS] = usage.input_tokens
            attrs[conv.GEN_AI_USAGE_OUTPUT_TOKENS] = usage.output_tokens
            if usage.cache_read_tokens:
                attrs["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read_tokens
            if usage.cache_write_tokens:
                attrs["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
            attrs[COST_ESTIMATED] = usage.estimated
            metrics.llm_usage(
                who.agent_id or "unknown", model, usage.input_tokens, usage.output_tokens, cost
            )
            if usage.estimated:
                metrics.estimated.labels(route).inc()
            if cost is None:
                attrs[COST_UNPRICED] = True
                metrics.unpriced_call(model)
            else:
                attrs[conv.AGENT_SRE_COST_USD] = cost
        elif USAGE_INVALID in attrs and call.cost is not None:
            model = facts.response_model or plan.model or "unknown"
            metrics.llm_usage(who.agent_id or "unknown", model, 0, 0, call.cost)
        if call.ttft is not None:
            attrs[TTFT_SECONDS] = call.ttft
            metrics.ttft.labels(route).observe(call.ttft)
        metrics.call_done(route, status, elapsed, call.added if call.reached_upstream else None)
        self._emit(record, call.trace)
