"""The rollout stage (slot ``routing``, after the route's own routing): which variant a call
takes, the candidate's model or upstream put in, the variant written on the call's span, and
what the call measured given to its rollout on the way back.

Only answers the upstream gave (``call.decided_by``) are measured, and only they are
mirrored to a shadow candidate, on the way back: a chaos fault or a replayed recording says
nothing of either variant, and a replayed call must reach no provider at all."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_sre.delivery.analysis import Observation
from agent_sre.delivery.assign import BASELINE, CANDIDATE
from agent_sre.delivery.rollout import PROMOTED
from agent_sre.gateway.outcome import DecidedBy

if TYPE_CHECKING:
    from aiohttp import web

    from agent_sre.delivery.rollout import Rollout
    from agent_sre_daemon.delivery.runtime import DeliveryRuntime
    from agent_sre_daemon.proxy.call import Call
    from agent_sre_daemon.proxy.stage import StageSlot

ROLLOUT = "agent_sre.rollout"
VARIANT = "agent_sre.rollout.variant"
SHADOWED = "agent_sre.rollout.shadowed"


class RolloutStage:
    name = "rollout"
    slot: StageSlot = "routing"

    def __init__(self, runtime: DeliveryRuntime) -> None:
        self.runtime = runtime
        self._taking_part: dict[int, tuple[Rollout, str, bool]] = {}
        """Calls in flight taking part: their rollout, variant, and whether to mirror them."""

    # hot path: per proxied call
    async def on_request(self, call: Call) -> web.StreamResponse | None:
        rollouts = self.runtime.by_route.get(call.route.name)
        if not rollouts:
            return None
        for rollout in rollouts:
            which = self._variant(rollout, call)
            if which is not None:
                break
        else:
            return None
        spec = rollout.spec
        attrs = call.record.attributes
        attrs[ROLLOUT] = spec.name
        shadow = False
        if spec.mode == "shadow" and rollout.running:
            shadow = which == CANDIDATE
            which = BASELINE
        elif which == CANDIDATE:
            if spec.vary == "model":
                _to_model(call, spec.candidate)
            elif spec.vary == "upstream":
                call.upstream_url = upstream_url(spec.candidate, call)
        attrs[VARIANT] = which
        if rollout.running:
            self._taking_part[id(call)] = (rollout, which, shadow)
        return None

    async def on_response(self, call: Call) -> None:
        taking_part = self._taking_part.pop(id(call), None)
        if taking_part is None:
            return
        rollout, which, shadow = taking_part
        if call.decided_by is not DecidedBy.UPSTREAM:
            return
        if shadow and self.runtime.shadow.mirror(rollout, call, candidate_request):
            call.record.attributes[SHADOWED] = True
        seen = observation(call, self.runtime.clock.monotonic() - call.started)
        rollout.observe(which, seen)
        result = "success" if seen.success else "error"
        self.runtime.metrics.requests.labels(rollout.name, which, result).inc()

    def _variant(self, rollout: Rollout, call: Call) -> str | None:
        """The call's variant, or None when the call is not part of ``rollout``."""
        spec = rollout.spec
        if spec.vary == "agent_version":
            version = call.identity.agent_version
            if version == spec.candidate:
                return CANDIDATE
            return BASELINE if version == spec.baseline else None
        if spec.vary == "model" and spec.baseline and call.plan.model != spec.baseline:
            return None
        if spec.vary == "model" and not call.plan.model:
            return None
        if rollout.state.phase == PROMOTED:
            return CANDIDATE
        if not rollout.running:
            return BASELINE
        return rollout.variant_of(sticky_key(call))


def sticky_key(call: Call) -> str:
    """The task id, else the trace id: one task never mixes variants."""
    if call.identity.task_id:
        return "task:" + call.identity.task_id
    if call.trace is not None:
        return "trace:" + call.trace.trace_id.hex()
    return ""


def observation(call: Call, latency: float) -> Observation:
    usage = call.facts.usage
    return Observation(
        success=call.reached_upstream and 0 < call.status < 400 and call.record.error is None,
        latency=latency,
        ttft=call.ttft,
        cost=call.cost,
        tokens=None if usage is None else usage.input_tokens + usage.output_tokens,
        task=call.identity.task_id,
    )


def candidate_request(call: Call, model: str) -> tuple[bytes, str, str] | None:
    """The call's request asking ``model``: its body, upstream URL and the model it is
    priced as (the provider says where a request names its model: the body, the path);
    None when it names none."""
    provider = call.route.provider
    changed = provider.with_model(call.plan, call.path, model)
    if changed is None:
        return None
    body, path = changed
    url = call.upstream_url
    if path != call.path:
        old = call.route.upstream + call.path
        rest = url[len(old) :] if url.startswith(old) else ""
        url = call.route.upstream + path + rest
    priced = provider.plan(call.route.config, call.request.method, path, body).model
    return body, url, priced or model


def _to_model(call: Call, model: str) -> None:
    """Sends the call to ``model`` of the same provider: the body (or path), the plan (what
    settle prices) and the span's name follow."""
    found = candidate_request(call, model)
    if found is None:
        return
    plan = call.plan
    plan.body, call.upstream_url, plan.model = found
    if plan.operation is not None:
        call.record.name = f"{plan.operation} {plan.model}"


def upstream_url(upstream: str, call: Call) -> str:
    return upstream.rstrip("/") + call.path + (f"?{call.query}" if call.query else "")
