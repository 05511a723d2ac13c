"""The rollouts' part of the admin API (the admin server checks the token of every POST).

``GET /v1/rollouts[/{name}]``, ``POST /v1/rollouts`` (a rollout spec as JSON),
``POST /v1/rollouts/{name}/promote|pause|resume|abort``, ``DELETE /v1/rollouts/{name}`` (a
posted rollout; a running one is aborted first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from pydantic import ValidationError

from agent_sre.delivery.rollout import PROMOTED, CertificationRequiredError, RolloutConflictError
from agent_sre.delivery.spec import RolloutSpec
from agent_sre_daemon.admin.inputs import json_body
from agent_sre_daemon.errors import admin_error

if TYPE_CHECKING:
    from agent_sre_daemon.delivery.runtime import DeliveryRuntime

OPERATIONS = ("promote", "pause", "resume", "abort")


def admin_routes(runtime: DeliveryRuntime) -> list[web.RouteDef]:
    async def listing(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "rollouts": [r.to_dict() for r in runtime.rollouts.values()],
                "at": runtime.clock.time(),
            }
        )

    async def show(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        rollout = runtime.rollouts.get(name)
        if rollout is None:
            return admin_error(404, "rollout_not_found", f"no rollout named {name!r}")
        data = rollout.to_dict()
        data["current_analysis"] = rollout.analysis().to_dict()
        return web.json_response(data)

    async def operate(request: web.Request) -> web.Response:
        name, operation = request.match_info["name"], request.match_info["operation"]
        if operation not in OPERATIONS:
            return admin_error(
                404, "not_found", f"no operation {operation!r} (one of {', '.join(OPERATIONS)})"
            )
        try:
            rollout = runtime.operate(name, operation)
        except KeyError:
            return admin_error(404, "rollout_not_found", f"no rollout named {name!r}")
        except CertificationRequiredError as exc:
            return admin_error(409, "certification_required", str(exc))
        except RolloutConflictError as exc:
            return admin_error(409, "conflict", str(exc))
        return web.json_response(rollout.to_dict())

    async def declare(request: web.Request) -> web.Response:
        body = await json_body(request)
        try:
            spec = RolloutSpec.model_validate(body)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'rollout'}: {e['msg']}"
                for e in exc.errors()
            )
            return admin_error(400, "invalid_argument", problems)
        try:
            rollout = runtime.declare(spec)
        except ValueError as exc:
            status = 409 if "exists" in str(exc) else 400
            kind = "conflict" if status == 409 else "invalid_argument"
            return admin_error(status, kind, str(exc))
        return web.json_response(rollout.to_dict(), status=201)

    async def delete(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            rollout, stopped = runtime.delete(name)
        except KeyError:
            return admin_error(404, "rollout_not_found", f"no rollout named {name!r}")
        except RolloutConflictError as exc:
            return admin_error(409, "conflict", str(exc))
        if stopped:
            message = (
                f"rollout {name} was running: aborted (every call to the baseline), then deleted"
            )
        else:
            message = f"rollout {name} deleted (it was {rollout.state.phase})"
        if rollout.state.phase == PROMOTED:
            message += "; calls no longer take its candidate"
        return web.json_response(
            {
                "deleted": name,
                "stopped": stopped,
                "message": message,
                "rollout": rollout.to_dict(),
            }
        )

    return [
        web.get("/v1/rollouts", listing),
        web.post("/v1/rollouts", declare),
        web.get("/v1/rollouts/{name}", show),
        web.post("/v1/rollouts/{name}/{operation}", operate),
        web.delete("/v1/rollouts/{name}", delete),
    ]
