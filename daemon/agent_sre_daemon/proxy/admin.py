"""The proxy's part of the admin API: budgets, agents, and the kill switch.

The admin server checks the bearer token of every non-GET request before calling these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from agent_sre.cost.windows import position

if TYPE_CHECKING:
    from collections.abc import Callable

    from agent_sre_daemon.proxy.gate import BudgetGate


def admin_routes(gate: BudgetGate, clock: Callable[[], float]) -> list[web.RouteDef]:
    """``GET /v1/budgets``, ``GET /v1/agents``, ``POST /v1/agents/{id}/block|unblock``."""

    async def budgets(request: web.Request) -> web.Response:
        now = clock()
        counters = await gate.store.counters()
        out: list[dict[str, Any]] = []
        for spec in gate.config.budgets:
            where = position(spec.window, now)
            first = where.bucket - where.span + 1
            subjects: dict[str, float] = {}
            for view in counters:
                if view.budget == spec.name and first <= view.bucket <= where.bucket:
                    subjects[view.subject] = subjects.get(view.subject, 0.0) + view.spent_usd
            out.append(
                {
                    "name": spec.name,
                    "scope": spec.scope,
                    "window": spec.window,
                    "limit_usd": spec.limit_usd,
                    "action": spec.action,
                    "soft_thresholds": spec.soft_thresholds,
                    "subjects": [
                        {
                            "subject": subject,
                            "spent_usd": spent,
                            "remaining_usd": max(0.0, spec.limit_usd - spent),
                        }
                        for subject, spent in sorted(subjects.items())
                    ],
                }
            )
        signals = [
            {
                "at": at,
                "kind": s.kind,
                "message": s.message,
                "agent_id": s.agent_id,
                "budget": s.budget,
                "value": s.value,
            }
            for at, s in list(gate.signals)[-50:]
        ]
        return web.json_response({"store": gate.config.store, "budgets": out, "signals": signals})

    async def agents(request: web.Request) -> web.Response:
        seen = dict(gate.agents)
        rows = []
        for agent_id in sorted(set(seen) | set(gate.guard.blocked)):
            view = seen.get(agent_id)
            rows.append(
                {
                    "agent_id": agent_id,
                    "blocked": agent_id in gate.guard.blocked,
                    "blocked_reason": gate.guard.blocked.get(agent_id),
                    "requests": view.requests if view else 0,
                    "denied": view.denied if view else 0,
                    "cost_usd": view.cost_usd if view else 0.0,
                    "last_seen": view.last_seen if view else None,
                }
            )
        return web.json_response({"agents": rows})

    async def block(request: web.Request) -> web.Response:
        agent_id = request.match_info["agent_id"]
        reason = "blocked by an operator"
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                body = None
            if isinstance(body, dict) and isinstance(body.get("reason"), str):
                reason = body["reason"]
        await gate.block(agent_id, reason)
        return web.json_response({"agent_id": agent_id, "blocked": True, "reason": reason})

    async def unblock(request: web.Request) -> web.Response:
        agent_id = request.match_info["agent_id"]
        was = await gate.unblock(agent_id)
        return web.json_response({"agent_id": agent_id, "blocked": False, "was_blocked": was})

    return [
        web.get("/v1/budgets", budgets),
        web.get("/v1/agents", agents),
        web.post("/v1/agents/{agent_id}/block", block),
        web.post("/v1/agents/{agent_id}/unblock", unblock),
    ]
