"""The faults stage finds the experiments that may target a call by the call's agent: a call
no experiment names passes by with a lookup, and the index never changes what is injected
(declared order, patterns, experiments started or reloaded after it was built)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from agent_sre.config import Config
from agent_sre_daemon.chaos.runtime import ChaosRuntime
from tests.support.context import node_context

if TYPE_CHECKING:
    from pathlib import Path


def experiment(name: str, agents: list[str], status: int) -> dict[str, Any]:
    return {
        "name": name,
        "targets": {"routes": ["openai"], "agents": agents},
        "faults": [{"type": "error", "status": status, "probability": 1.0}],
        "duration": "1h",
    }


EXPERIMENTS = [
    experiment("planner-only", ["planner"], 500),
    experiment("team", ["team-*"], 502),
    experiment("everyone-but-late", ["planner", "writer", "team-a"], 503),
]


def config(tmp_path: Path, experiments: list[dict[str, Any]]) -> Config:
    return Config.model_validate(
        {"state_dir": str(tmp_path), "chaos": {"enabled": True, "experiments": experiments}}
    )


def call(agent: str, route: str = "openai") -> Any:
    failures: list[str] = []
    return SimpleNamespace(
        request=SimpleNamespace(headers={}, transport=None),
        route=SimpleNamespace(name=route, config=SimpleNamespace(api="openai"), prefix="/openai"),
        identity=SimpleNamespace(agent_id=agent, agent_version=""),
        plan=SimpleNamespace(
            api="openai", model="gpt-4o-mini", tool_name=None, stream=False, body=b"{}"
        ),
        record=SimpleNamespace(attributes={}, error=None),
        response_headers={},
        fault=None,
        fail=lambda kind, message: failures.append(kind),
        failures=failures,
    )


async def status_of(runtime: ChaosRuntime, agent: str, route: str = "openai") -> int | None:
    answer = await runtime.stage.on_request(call(agent, route))
    return None if answer is None else int(answer.status)


@pytest.fixture
async def runtime(tmp_path: Path) -> Any:
    runtime = ChaosRuntime(node_context(config(tmp_path, EXPERIMENTS)))
    await runtime.store.open()
    yield runtime
    await runtime.store.close()


async def test_each_call_meets_the_first_experiment_that_targets_it(runtime: Any) -> None:
    for spec in EXPERIMENTS:
        runtime.start_experiment(spec["name"])
    assert await status_of(runtime, "planner") == 500  # declared first
    assert await status_of(runtime, "team-a") == 502  # the pattern, declared before
    assert await status_of(runtime, "team-b") == 502
    assert await status_of(runtime, "writer") == 503
    assert await status_of(runtime, "nobody") is None
    assert await status_of(runtime, "") is None
    assert await status_of(runtime, "planner", route="anthropic") is None
    seen = {e.name: e.run.calls_seen for e in runtime.experiments.values()}
    assert seen == dict.fromkeys(seen, 7)  # every call while faults run, targeted or not


async def test_an_experiment_started_after_the_index_was_built_is_seen(runtime: Any) -> None:
    runtime.start_experiment("everyone-but-late")
    assert await status_of(runtime, "planner") == 503
    runtime.start_experiment("planner-only")
    assert await status_of(runtime, "planner") == 500
    runtime.stop_experiment("planner-only")
    assert await status_of(runtime, "planner") == 503
    late = runtime.experiments["everyone-but-late"].run
    early = runtime.experiments["planner-only"].run
    assert late.calls_seen == 3
    assert early is None or early.calls_seen == 1


async def test_a_reload_replaces_the_index(runtime: Any, tmp_path: Path) -> None:
    runtime.start_experiment("planner-only")
    assert await status_of(runtime, "writer") is None
    changed = [*EXPERIMENTS, experiment("writers", ["writer"], 504)]
    prepared = await runtime.prepare_reload(config(tmp_path, changed))
    if prepared.commit is not None:
        await prepared.commit()
    runtime.start_experiment("writers")
    assert await status_of(runtime, "writer") == 504
    assert await status_of(runtime, "planner") == 500


async def test_many_experiments_naming_other_agents_leave_a_call_alone(tmp_path: Path) -> None:
    many = [experiment(f"e{i}", [f"agent-{i}"], 500) for i in range(200)]
    runtime = ChaosRuntime(node_context(config(tmp_path, many)))
    await runtime.store.open()
    try:
        for spec in many:
            runtime.start_experiment(spec["name"])
        assert await status_of(runtime, "agent-150") == 500
        assert await status_of(runtime, "stranger") is None
        assert runtime.stage._by_agent.get("stranger", runtime.stage._anyone) == ()
    finally:
        await runtime.store.close()
