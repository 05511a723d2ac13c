"""What the call used and cost: reported usage, or an estimate from what passed (never zero
once the provider answered with success), priced at the model that answered.

Entered just before the upstream, so it is the first to see the answer on the way back: the
admission stage then books this cost and the record stage writes it on the span."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_sre.gateway.cost import call_cost, settled_usage

if TYPE_CHECKING:
    from aiohttp import web

    from agent_sre_daemon.clock import Clock
    from agent_sre_daemon.proxy.call import Call
    from agent_sre_daemon.proxy.gate import BudgetGate
    from agent_sre_daemon.proxy.stage import StageSlot


class SettleStage:
    name = "settle"
    slot: StageSlot = "settle"

    def __init__(self, gate: BudgetGate, clock: Clock) -> None:
        self._gate = gate
        self._clock = clock

    async def on_request(self, call: Call) -> web.StreamResponse | None:
        return None

    async def on_response(self, call: Call) -> None:
        plan = call.plan
        if not plan.priced:
            return
        usage = settled_usage(plan, call.facts, call.reached_upstream, call.status)
        if usage is None:
            call.cost = 0.0
            return
        call.facts.usage = usage
        call.cost = call_cost(self._gate.pricer, plan, call.facts, usage, self._clock.time())
