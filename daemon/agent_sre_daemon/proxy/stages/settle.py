"""What the call used and cost: reported usage, or an estimate from what passed (never zero
once the provider answered with success), priced at the model that answered.

Entered just before the upstream, so it is the first to see the answer on the way back: the
admission stage then books this cost and the record stage writes it on the span."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from agent_sre.gateway.cost import call_cost, settled_usage, usage_problem
from agent_sre.tracing import conventions as conv
from agent_sre_daemon.proxy.spans import COST_ESTIMATED, USAGE_INVALID

if TYPE_CHECKING:
    from aiohttp import web

    from agent_sre_daemon.clock import Clock
    from agent_sre_daemon.proxy.call import Call
    from agent_sre_daemon.proxy.gate import BudgetGate
    from agent_sre_daemon.proxy.stage import StageSlot

log = logging.getLogger("agent_sre.proxy")


class SettleStage:
    name = "settle"
    slot: StageSlot = "settle"

    def __init__(self, gate: BudgetGate, clock: Clock) -> None:
        self._gate = gate
        self._clock = clock

    async def on_request(self, call: Call) -> web.StreamResponse | None:
        return None

    async def on_response(self, call: Call) -> None:
        plan, facts = call.plan, call.facts
        if not plan.priced:
            return
        now = self._clock.time()
        pricer = self._gate.pricer
        try:
            problem = facts.usage_problem
            if problem is None and facts.usage is not None:
                problem = usage_problem(pricer, plan, facts.usage, now)
            if problem is None:
                usage = settled_usage(plan, facts, call.reached_upstream, call.status)
                if usage is None:
                    call.cost = 0.0
                    return
                facts.usage = usage
                cost = call_cost(pricer, plan, facts, usage, now)
                if cost is None or (math.isfinite(cost) and cost >= 0):
                    call.cost = cost
                    return
                problem = f"its cost is not a finite amount ({cost!r})"
        except Exception as exc:  # never a leaked reservation over a price
            problem = f"it could not be priced ({type(exc).__name__})"
        self._unusable(call, problem, now)

    def _unusable(self, call: Call, problem: str, now: float) -> None:
        """The upstream's usage cannot be booked: the call settles at what it reserved (its
        worst case), without token counts, marked on its span."""
        reservation = call.ticket.reservation if call.ticket is not None else None
        if reservation is not None:
            cost = reservation.amount_usd
        else:
            cost = self._gate.worst_case_usd(call.plan, now)
        call.facts.usage = None
        call.cost = cost
        attrs = call.record.attributes
        attrs[USAGE_INVALID] = problem
        attrs[conv.AGENT_SRE_COST_USD] = cost
        attrs[COST_ESTIMATED] = True
        self._gate.metrics.invalid_usage.labels(call.route.name).inc()
        log.warning(
            "route %s: the upstream's usage is unusable (%s); settled at the reservation",
            call.route.name,
            problem,
        )
