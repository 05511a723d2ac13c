"""``/v1/chaos/...``: experiments, starting and stopping them, and run results.

- ``GET /v1/chaos``: enabled, experiments with their state, templates;
- ``POST /v1/chaos/experiments/{name}/start`` and ``.../stop``;
- ``POST /v1/chaos/stop``: stops every experiment (the big red button);
- ``GET /v1/chaos/runs`` (``?experiment=``, ``?limit=``) and ``GET /v1/chaos/runs/{id}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from agent_sre.chaos.templates import TEMPLATES
from agent_sre_daemon.admin.inputs import query_number
from agent_sre_daemon.errors import admin_error

if TYPE_CHECKING:
    from agent_sre_daemon.chaos.runtime import ChaosRuntime, Experiment

MAX_RUNS = 1000


def admin_routes(runtime: ChaosRuntime) -> list[web.RouteDef]:
    from agent_sre_daemon.chaos.runtime import StartRefusedError

    def experiment_view(experiment: Experiment) -> dict[str, Any]:
        run = experiment.run
        return {
            "name": experiment.name,
            "description": experiment.spec.description,
            "template": experiment.spec.template,
            "state": run.state if run is not None else "idle",
            "run": run.to_dict() if run is not None else None,
            "config": experiment.spec.model_dump(mode="json"),
        }

    async def overview(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "enabled": runtime.enabled,
                "allow_header_faults": runtime.allow_header_faults,
                "experiments": [experiment_view(e) for e in runtime.experiments.values()],
                "templates": {name: t.get("description", "") for name, t in TEMPLATES.items()},
            }
        )

    async def start(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            run = runtime.start_experiment(name)
        except StartRefusedError as exc:
            return admin_error(exc.status, exc.type, str(exc))
        return web.json_response(run.to_dict(), status=201)

    async def stop(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in runtime.experiments:
            return admin_error(404, "experiment_not_found", f"no experiment named {name!r}")
        run = runtime.stop_experiment(name)
        if run is None:
            return admin_error(409, "not_running", f"experiment {name} is not running")
        return web.json_response(run.to_dict())

    async def stop_all(request: web.Request) -> web.Response:
        stopped = runtime.stop_all()
        return web.json_response({"stopped": [run.to_dict() for run in stopped]})

    async def runs(request: web.Request) -> web.Response:
        experiment = request.query.get("experiment", "")
        limit = query_number(request.query, "limit", 100, minimum=1, maximum=MAX_RUNS, integer=True)
        live = {run.id: run.to_dict() for run in runtime.live_runs()}
        stored = await runtime.store.runs(experiment, limit)
        merged = [live.pop(row["id"], row) for row in stored]
        merged += [
            row for row in live.values() if not experiment or row["experiment"] == experiment
        ]
        merged.sort(key=lambda row: row["started_at"], reverse=True)
        return web.json_response({"runs": merged[:limit]})

    async def run(request: web.Request) -> web.Response:
        run_id = request.match_info["id"]
        for live in runtime.live_runs():
            if live.id == run_id:
                return web.json_response(live.to_dict())
        found = await runtime.store.get(run_id)
        if found is None:
            return admin_error(404, "run_not_found", f"no chaos run {run_id!r}")
        return web.json_response(found)

    return [
        web.get("/v1/chaos", overview),
        web.get("/v1/chaos/experiments", overview),
        web.post("/v1/chaos/experiments/{name}/start", start),
        web.post("/v1/chaos/experiments/{name}/stop", stop),
        web.post("/v1/chaos/stop", stop_all),
        web.get("/v1/chaos/runs", runs),
        web.get("/v1/chaos/runs/{id}", run),
    ]
