"""Kill switch, rate limits, pacing and the budget reservation; the settlement on the way
back (the stage that reserved is the one that gives back, whatever happened in between)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_sre.cost.guard import Denial
from agent_sre_daemon.errors import proxy_error

if TYPE_CHECKING:
    from aiohttp import web

    from agent_sre_daemon.clock import Clock
    from agent_sre_daemon.proxy.call import Call
    from agent_sre_daemon.proxy.gate import BudgetGate
    from agent_sre_daemon.proxy.stage import StageSlot


class AdmissionStage:
    name = "admission"
    slot: StageSlot = "admission"

    def __init__(self, gate: BudgetGate, clock: Clock) -> None:
        self._gate = gate
        self._clock = clock

    async def on_request(self, call: Call) -> web.StreamResponse | None:
        outcome = await self._gate.admit(call.plan, call.identity, self._clock.time())
        if isinstance(outcome, Denial):
            call.fail(outcome.kind, outcome.message)
            call.refused = True
            return proxy_error(
                call.route.config.api, outcome.kind, outcome.message, outcome.retry_after
            )
        call.ticket = outcome
        call.identity = outcome.who  # with the team from budgets.agent_teams
        return None

    async def on_response(self, call: Call) -> None:
        if call.ticket is not None:
            await self._gate.settle(call.ticket, call.cost or 0.0, self._clock.time())
