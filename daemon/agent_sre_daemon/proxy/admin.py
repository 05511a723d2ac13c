"""The proxy's part of the admin API: budgets, agents, the blocked ones, and the kill switch.

The admin server checks the bearer token of every non-GET request before calling these.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web

from agent_sre.cost.guard import SOURCE
from agent_sre_daemon.admin.inputs import json_body
from agent_sre_daemon.admin.paging import asks_for_page, page
from agent_sre_daemon.errors import admin_error

if TYPE_CHECKING:
    from agent_sre_daemon.clock import Clock
    from agent_sre_daemon.proxy.gate import BudgetGate
    from agent_sre_daemon.signals import SignalBus

log = logging.getLogger("agent_sre.proxy")

RECENT_SIGNALS = 50


def admin_routes(gate: BudgetGate, bus: SignalBus, clock: Clock) -> list[web.RouteDef]:
    """``GET /v1/budgets``, ``GET /v1/budgets/{name}`` (each subject's spend series and
    forecast, paged), ``GET /v1/agents`` (paged with ``q``/``limit``/``offset``),
    ``GET /v1/agents/blocked``, ``POST /v1/agents/{id}/block|unblock``."""

    async def budgets(request: web.Request) -> web.Response:
        signals = [
            {
                "at": s.at,
                "kind": s.type,
                "message": s.message,
                "agent_id": s.labels.get("agent_id", ""),
                "budget": s.labels.get("budget", ""),
                "value": s.value or 0.0,
            }
            for s in bus.recent(source=SOURCE, limit=RECENT_SIGNALS)
        ]
        return web.json_response(
            {
                "store": gate.config.store,
                "budgets": await gate.budgets(clock.time()),
                "signals": signals,
            }
        )

    async def budget(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        now = clock.time()
        found = await gate.forecasts(name, now)
        if found is None:
            return admin_error(404, "budget_not_found", f"no budget named {name!r}")
        rows, paging = page(found, request.query, key=lambda row: row[0])
        spec = next(b for b in gate.config.budgets if b.name == name)
        return web.json_response(
            {
                "name": spec.name,
                "scope": spec.scope,
                "window": spec.window,
                "limit_usd": spec.limit_usd,
                "action": spec.action,
                "soft_thresholds": spec.soft_thresholds,
                "at": now,
                **paging,
                "subjects": [
                    {"subject": subject, **forecast.to_dict(now)} for subject, forecast in rows
                ],
            }
        )

    async def agents(request: web.Request) -> web.Response:
        rows = gate.agents()
        if not asks_for_page(request.query):
            return web.json_response({"agents": rows})
        found, paging = page(rows, request.query, key=lambda row: str(row["agent_id"]))
        return web.json_response({"agents": found, **paging})

    async def blocked(request: web.Request) -> web.Response:
        # read from the store now: with the Redis ledger, blocks set through any daemon of
        # the fleet (the last known ones while Redis is unreachable)
        await gate.refresh_blocks()
        rows = [{"agent_id": a, "reason": r} for a, r in sorted(gate.blocked().items())]
        return web.json_response({"store": gate.config.store, "blocked": rows})

    async def block(request: web.Request) -> web.Response:
        agent_id = request.match_info["agent_id"]
        reason = "blocked by an operator"
        body = await json_body(request, required=False)
        if isinstance(body, dict) and isinstance(body.get("reason"), str):
            reason = body["reason"]
        await gate.block(agent_id, reason)
        log.info("agent %s blocked by an operator from %s: %s", agent_id, request.remote, reason)
        return web.json_response({"agent_id": agent_id, "blocked": True, "reason": reason})

    async def unblock(request: web.Request) -> web.Response:
        agent_id = request.match_info["agent_id"]
        was = await gate.unblock(agent_id)
        log.info("agent %s unblocked by an operator from %s (was blocked: %s)", agent_id,
                 request.remote, was)  # fmt: skip
        return web.json_response({"agent_id": agent_id, "blocked": False, "was_blocked": was})

    return [
        web.get("/v1/budgets", budgets),
        web.get("/v1/budgets/{name}", budget),
        web.get("/v1/agents", agents),
        web.get("/v1/agents/blocked", blocked),
        web.post("/v1/agents/{agent_id}/block", block),
        web.post("/v1/agents/{agent_id}/unblock", unblock),
    ]
