"""The ``faults`` stage: injects the running experiments' faults into real proxied calls.

Each fault imitates the real failure on the wire (see :mod:`agent_sre.chaos.shapes`): an
error or a 429 in the provider's own shape, a call held until the client gives up, a reset
connection, a body that is not JSON, a stream cut or slowed mid-way, inflated usage, a tool
error in its own shape, a renamed result field. A faulted call's span carries
``agent_sre.chaos.experiment`` and ``agent_sre.chaos.fault`` and its response the header
``x-agent-sre-chaos``. With chaos disabled the stage only reads one flag.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from agent_sre.chaos import shapes
from agent_sre.chaos.headers import (
    FAULT_HEADER,
    HEADER_EXPERIMENT,
    HeaderFaultError,
    parse_fault_header,
)
from agent_sre.chaos.targeting import (
    CallFacts,
    applicable,
    chosen,
    matches,
    may_match,
    pick_fault,
)
from agent_sre.cost.usage import TokenUsage
from agent_sre.gateway.plan import json_object
from agent_sre.gateway.providers import PROVIDERS
from agent_sre.gateway.sse import EVENT_END
from agent_sre_daemon.errors import proxy_error

if TYPE_CHECKING:
    from agent_sre.chaos.results import Run
    from agent_sre.chaos.spec import FaultSpec
    from agent_sre_daemon.chaos.runtime import ChaosRuntime, Experiment
    from agent_sre_daemon.proxy.call import Call
    from agent_sre_daemon.proxy.stage import StageSlot

log = logging.getLogger("agent_sre.chaos")

CHAOS_HEADER = "x-agent-sre-chaos"
ATTR_EXPERIMENT = "agent_sre.chaos.experiment"
ATTR_FAULT = "agent_sre.chaos.fault"
FAILING = frozenset(
    {
        "error",
        "rate_limit",
        "timeout",
        "connection_reset",
        "malformed_response",
        "truncated_stream",
        "tool_error",
    }
)
"""Faults that make the call fail (``error.type`` ``chaos_<fault>`` on its span); the others
(latency, slow_stream, token_inflation, schema_drift) leave a call that succeeded on the wire
a success, so latency and cost SLIs judge it, not the error SLIs."""
POLL = 0.1
"""How often a held call looks whether its client left or its experiment stopped."""


@dataclasses.dataclass
class CallChaos:
    """What the stage decided for one call, kept until the call comes back."""

    matched: list[Experiment]
    fault: FaultSpec | None = None
    experiment: Experiment | None = None


class ChaosStage:
    name = "chaos"
    slot: StageSlot = "faults"

    def __init__(self, runtime: ChaosRuntime) -> None:
        self.runtime = runtime
        self._calls: dict[int, CallChaos] = {}
        self._indexed: dict[str, Experiment] | None = None
        """The experiments (the runtime's dict, replaced on every reload) indexed below."""
        self._version = -1
        self._by_agent: dict[str, tuple[Experiment, ...]] = {}
        """The experiments that may target an agent named in some experiment's targets."""
        self._anyone: tuple[Experiment, ...] = ()
        """Experiments that may target any agent (no agent list, or a pattern in it)."""
        self._runs: tuple[Run, ...] = ()
        """The runs injecting when indexed (a run that stopped since is skipped)."""

    def _index(self, experiments: dict[str, Experiment]) -> None:
        """Experiments by the agents they name, so that a call no experiment names costs a
        dictionary lookup, whatever the number of experiments."""
        anyone: list[Experiment] = []
        named: dict[str, list[Experiment]] = {}
        ordered = list(experiments.values())
        for experiment in ordered:
            agents = experiment.spec.targets.agents
            if not agents or any(agent.endswith("*") for agent in agents):
                anyone.append(experiment)
            else:
                for agent in dict.fromkeys(agents):
                    named.setdefault(agent, []).append(experiment)
        self._anyone = tuple(anyone)
        everyone = {id(e) for e in anyone}
        self._by_agent = {}
        for agent, listed in named.items():
            wanted = everyone | {id(e) for e in listed}
            self._by_agent[agent] = tuple(
                e for e in ordered if id(e) in wanted
            )  # declared order: the first experiment that draws a fault injects it
        self._runs = tuple(e.run for e in ordered if e.run is not None and e.run.injecting)
        self._indexed, self._version = experiments, self.runtime.version

    # hot path: per proxied call
    async def on_request(self, call: Call) -> web.StreamResponse | None:
        runtime = self.runtime
        if not runtime.enabled:
            return None
        header = call.request.headers.get(FAULT_HEADER) if runtime.allow_header_faults else None
        experiments = runtime.experiments
        if not experiments and header is None:
            return None
        if experiments is not self._indexed or runtime.version != self._version:
            self._index(experiments)
        for seen in self._runs:  # every call while faults run counts (targeted or not)
            if seen.state == "running":
                seen.calls_seen += 1
        route, agent = call.route.name, call.identity.agent_id or ""
        facts: CallFacts | None = None  # built only for a call some experiment may target
        matched = []
        for experiment in self._by_agent.get(agent, self._anyone):
            targets = experiment.spec.targets
            if not may_match(targets, route, agent):
                continue
            if facts is None:
                facts = _facts(call)
            if matches(targets, facts):
                matched.append(experiment)
        if not matched and header is None:
            return None
        if facts is None:
            facts = _facts(call)
        state = CallChaos(matched)
        self._calls[id(call)] = state
        draw = runtime.draw
        for experiment in matched:
            run = experiment.run
            if run is None or not run.injecting:
                continue
            runtime.metrics.targeted.labels(experiment.name).inc()
            if state.fault is not None or not chosen(experiment.spec.targets.share, draw):
                continue
            run.calls_chosen += 1
            limit = experiment.spec.max_active_faults
            if limit is not None and experiment.in_flight >= limit:
                continue
            fault = pick_fault(experiment.spec.faults, facts, draw)
            if fault is not None:
                state.fault, state.experiment = fault, experiment
        if header is not None and state.fault is None:
            try:
                fault = parse_fault_header(header)
            except HeaderFaultError as exc:
                call.fail("bad_request", str(exc))
                return proxy_error(call.route.config.api, "bad_request", str(exc))
            if not applicable(fault, facts):
                message = f"{FAULT_HEADER}: {fault.type} does not apply to this call"
                call.fail("bad_request", message)
                return proxy_error(call.route.config.api, "bad_request", message)
            state.fault = fault
        if state.fault is None:
            return None
        return await self._inject(call, state.fault, state.experiment)

    async def on_response(self, call: Call) -> None:
        state = self._calls.pop(id(call), None)
        if state is None:
            return
        fault = state.fault
        if fault is not None:
            if state.experiment is not None:
                state.experiment.in_flight -= 1
            lifted = ATTR_FAULT not in call.record.attributes
            if fault.type in FAILING and not lifted:
                # a cut stream reads as the client leaving; the span says what really happened
                call.fail(f"chaos_{fault.type}", f"chaos fault {fault.type} injected")
        ok = call.record.error is None and 0 < call.status < 400 and call.facts.tool_error is None
        now = self.runtime.clock.time()
        for experiment in state.matched:
            experiment.observe(now, ok, experiment is state.experiment, call.cost)

    # -- faults ---------------------------------------------------------------------------

    async def _inject(
        self, call: Call, fault: FaultSpec, experiment: Experiment | None
    ) -> web.StreamResponse | None:
        runtime = self.runtime
        name = experiment.name if experiment is not None else HEADER_EXPERIMENT
        kind = fault.type
        call.record.attributes[ATTR_EXPERIMENT] = name
        call.record.attributes[ATTR_FAULT] = kind
        call.fault = kind
        call.response_headers[CHAOS_HEADER] = kind
        runtime.metrics.faults.labels(name, kind).inc()
        if experiment is not None:
            experiment.in_flight += 1
            if experiment.run is not None:
                experiment.run.injected(kind)
        api = call.route.config.api
        live = _live(experiment)
        headers: dict[str, str] = {CHAOS_HEADER: kind}

        if kind == "latency":
            held = await _hold(call, fault.delay + fault.jitter * runtime.draw(), live)
            if held == GONE:
                # nobody left to answer: never forwarded, never billed, still the fault's
                message = f"chaos: the client left during an injected {fault.delay:g}s delay"
                call.fail("client_disconnected", message)
                return proxy_error(api, "client_disconnected", message)
            return None
        if kind == "error":
            call.fail("chaos_error", f"chaos: injected {fault.status}")
            return _error(api, fault.status, fault.message, headers)
        if kind == "rate_limit":
            call.fail("chaos_rate_limit", "chaos: injected 429")
            headers.update(shapes.rate_limit_headers(api, fault.retry_after, runtime.clock.time()))
            headers["retry-after"] = str(max(1, int(-(-fault.retry_after // 1))))
            headers["retry-after-ms"] = str(int(fault.retry_after * 1000))
            return _error(api, 429, fault.message, headers)
        if kind == "timeout":
            held = await _hold(call, fault.hold, live)
            if held == LIFTED:
                # the experiment stopped first: the call goes on, untouched
                call.response_headers.pop(CHAOS_HEADER, None)
                call.record.attributes.pop(ATTR_FAULT, None)
                call.record.attributes.pop(ATTR_EXPERIMENT, None)
                call.fault = None
                return None
            if held == GONE:  # what the fault imitates: the client gave up; nothing forwarded
                call.fail("chaos_timeout", f"chaos: held until the client left ({fault.hold:g}s)")
                return _error(api, 504, fault.message or "Request timed out.", headers)
            call.fail("chaos_timeout", f"chaos: held {fault.hold:g}s")
            return _error(api, 504, fault.message or "Request timed out.", headers)
        if kind == "connection_reset":
            call.fail("chaos_connection_reset", "chaos: connection reset")
            transport = call.request.transport
            if transport is not None:
                transport.abort()
            return web.Response(status=502, headers=headers)
        if kind == "tool_error":
            call.fail("chaos_tool_error", "chaos: tool failed")
            message = fault.message or "tool failed"
            if api in ("mcp", "a2a"):  # JSON-RPC: an error response, HTTP 200
                body = shapes.mcp_error_body(call.plan.mcp_request_id, message)
                return web.json_response(body, headers=headers)
            return web.json_response(
                PROVIDERS[api].error_body("tool_error", message, 500), status=500, headers=headers
            )
        call.add_chunk_tap(_tap(call, fault, live, runtime.draw))
        return None


def _facts(call: Call) -> CallFacts:
    plan, who = call.plan, call.identity
    method = ""
    if plan.api == "mcp" and plan.body:
        data = json_object(plan.body)
        method = str(data.get("method", "")) if data is not None else ""
    return CallFacts(
        route=call.route.name,
        api=plan.api,
        agent_id=who.agent_id or "",
        agent_version=who.agent_version or "",
        model=plan.model,
        tool=plan.tool_name or "",
        mcp_method=method,
        stream=plan.stream,
    )


def _live(experiment: Experiment | None) -> Callable[[], bool]:
    """Whether the fault still stands (an abort or stop lifts every fault at once)."""
    if experiment is None:
        return lambda: True
    run = experiment.run
    return lambda: run is not None and run.injecting and experiment.run is run


HELD, LIFTED, GONE = "held", "lifted", "gone"
"""How a hold ended: its full time, the fault lifted first, the client left first."""


async def _hold(call: Call, seconds: float, live: Callable[[], bool]) -> str:
    """Waits ``seconds``; returns early when the client leaves or the fault is lifted."""
    left = seconds
    while left > 0:
        step = min(POLL, left)
        await asyncio.sleep(step)
        left -= step
        transport = call.request.transport
        if transport is None or transport.is_closing():
            return GONE
        if not live():
            return LIFTED
    return HELD


def _error(api: str, status: int, message: str, headers: dict[str, str]) -> web.Response:
    kind, words = shapes.error_kind(api, status, message)
    provider = PROVIDERS[api]
    body = provider.error_body(kind, words, status)
    return web.json_response(
        body, status=status, headers={**headers, **provider.error_headers(kind, status)}
    )


def _tap(
    call: Call, fault: FaultSpec, live: Callable[[], bool], draw: Callable[[], float]
) -> Callable[[bytes], Awaitable[bytes]]:
    kind = fault.type
    events = 0
    first = True
    scaled: object = None

    async def tap(chunk: bytes) -> bytes:
        nonlocal events, first, scaled
        if not live():
            return chunk
        if kind == "malformed_response":
            if first:
                first = False
                return shapes.malformed(chunk) if not call.plan.stream else b'data: {"id": \n\n'
            return chunk
        if kind == "schema_drift":
            return shapes.drift(chunk, fault.field, fault.rename_to) if not call.plan.stream \
                else chunk  # fmt: skip
        if kind == "token_inflation":
            usage = call.facts.usage
            if usage is not None and usage is not scaled:
                # a stream's usage builds on the previous (already inflated) figures:
                # inflate only the ones that changed since
                before = scaled if isinstance(scaled, TokenUsage) else TokenUsage()
                scaled = dataclasses.replace(
                    usage,
                    input_tokens=_inflated(usage.input_tokens, before.input_tokens, fault.factor),
                    output_tokens=_inflated(
                        usage.output_tokens, before.output_tokens, fault.factor
                    ),
                )
                call.facts.usage = scaled
            return shapes.inflate_usage(chunk, fault.factor)
        if kind == "slow_stream":
            await asyncio.sleep(fault.delay + fault.jitter * draw())
            return chunk
        # truncated_stream: let ``after_events`` events through, then cut the connection
        ends = _event_ends(chunk)
        if events + len(ends) < fault.after_events or not call.plan.stream:
            events += len(ends)
            return chunk
        keep = chunk[: ends[fault.after_events - events - 1]] if fault.after_events > events \
            else b""  # fmt: skip
        events = fault.after_events
        writer = call.request.writer
        if keep:
            await writer.write(keep)
        await writer.drain()
        transport = call.request.transport
        if transport is not None:
            transport.close()
        raise ConnectionResetError("chaos: stream truncated")

    return tap


def _inflated(tokens: int, already: int, factor: float) -> int:
    return tokens if tokens == already and already else int(tokens * factor)


def _event_ends(chunk: bytes) -> list[int]:
    """Offsets just past each event end (a blank line: LF, CRLF or CR, as SSE allows and
    Gemini sends) in ``chunk``."""
    return [match.end() for match in EVENT_END.finditer(chunk)]


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
