"""The throttles' part of the admin API: ``GET /v1/throttles`` (every throttle in force),
``POST /v1/throttles`` (put one on by hand) and ``DELETE /v1/throttles/{agent_id}`` (lift
one). The admin server checks the token of every change before calling these."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from agent_sre.incidents.throttles import MAX_BY, PutBy, ThrottleRequest, ThrottleRequestError
from agent_sre_daemon.admin.inputs import json_body
from agent_sre_daemon.errors import admin_error

if TYPE_CHECKING:
    from agent_sre_daemon.clock import Clock
    from agent_sre_daemon.incidents.throttle import Outcome, ThrottleStage

OPERATOR = "operator"
"""Who an operator is when the request does not say (``by``)."""


def throttle_routes(stage: ThrottleStage, clock: Clock) -> list[web.RouteDef]:
    """The routes of ``/v1/throttles`` over ``stage``."""

    async def listing(request: web.Request) -> web.Response:
        now = clock.time()
        return web.json_response({"throttles": [t.to_dict(now) for t in stage.in_force(now)]})

    async def put(request: web.Request) -> web.Response:
        body = await json_body(request)
        try:
            wanted = ThrottleRequest.from_json(body)
        except ThrottleRequestError as exc:
            return admin_error(400, "invalid_argument", str(exc))
        by = PutBy(operator=wanted.by or OPERATOR)
        outcome = await stage.put(wanted.agent_id, wanted.requests_per_minute, wanted.lasting, by)
        return _answer(outcome, clock, "throttled")

    async def lift(request: web.Request) -> web.Response:
        agent = request.match_info["agent_id"]
        by = PutBy(operator=request.query.get("by", "").strip()[:MAX_BY] or OPERATOR)
        outcome = await stage.lift(agent, by)
        if outcome.throttle is None:
            return admin_error(404, "throttle_not_found", f"agent {agent!r} is not throttled")
        return _answer(outcome, clock, "lifted")

    return [
        web.get("/v1/throttles", listing),
        web.post("/v1/throttles", put),
        web.delete("/v1/throttles/{agent_id}", lift),
    ]


def _answer(outcome: Outcome, clock: Clock, done: str) -> web.Response:
    """The throttle put on or lifted, ``saved`` (false: the keeper could not be written,
    ``message`` says what that means)."""
    assert outcome.throttle is not None
    row = outcome.throttle.to_dict(clock.time())
    if done == "lifted":
        row["left_seconds"] = 0.0
    if not outcome.unsaved:
        message = f"agent {row['agent_id']} {done}"
    elif done == "throttled":
        message = f"agent {row['agent_id']} throttled, not saved (a restart lifts it): " + (
            outcome.unsaved
        )
    else:
        message = (
            f"agent {row['agent_id']} no longer throttled, still saved (a restart puts it back "
            f"until it lapses): {outcome.unsaved}"
        )
    return web.json_response({**row, "state": done, "saved": not outcome.unsaved,
                              "message": message})  # fmt: skip
