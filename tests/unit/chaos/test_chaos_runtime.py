"""The chaos runtime driven by a ManualClock: durations, abort rules on each check, windows,
the stop_chaos action, reloads, and restart recording a run as interrupted."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from agent_sre.config import Config
from agent_sre_daemon.chaos.runtime import ChaosRuntime, StartRefusedError
from agent_sre_daemon.clock import ManualClock
from tests.support.context import node_context

if TYPE_CHECKING:
    from pathlib import Path

MONDAY_NOON = 1_763_985_600.0  # 2025-11-24T12:00:00Z, a Monday


def make(tmp_path: Path, chaos: dict[str, Any], clock: ManualClock | None = None) -> ChaosRuntime:
    config = Config.model_validate({"state_dir": str(tmp_path), "chaos": chaos})
    clock = clock or ManualClock(MONDAY_NOON)
    context = node_context(config, clock, node_name="n")
    return ChaosRuntime(context)


def experiment(**extra: Any) -> dict[str, Any]:
    return {"name": "e", "faults": [{"type": "error"}], "duration": "1m", **extra}


def signals(runtime: ChaosRuntime) -> list[str]:
    return [s.type for s in runtime.context.bus.recent(source="chaos")]


async def test_a_run_completes_after_its_duration_and_observation(tmp_path: Path) -> None:
    runtime = make(tmp_path, {"enabled": True, "experiments": [experiment(observe_after="30s")]})
    await runtime.start()
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    run = runtime.start_experiment("e")
    runtime.experiments["e"].observe(clock.time(), False, True, 0.01)
    clock.advance(59)
    runtime.check()
    assert run.state == "running"
    clock.advance(1)
    runtime.check()
    assert run.state == "observing" and runtime.experiments["e"].run is run
    runtime.experiments["e"].observe(clock.time(), True, False, None)
    clock.advance(30)
    runtime.check()
    assert run.state == "completed" and runtime.experiments["e"].run is None
    assert signals(runtime) == ["chaos_started", "chaos_completed"]
    await runtime.stop(clock.monotonic() + 5)
    # stored: a new runtime on the same state dir lists it
    again = make(tmp_path, {"enabled": True, "experiments": [experiment()]}, clock)
    await again.start()
    stored = await again.store.runs()
    assert [(r["id"], r["state"]) for r in stored] == [(run.id, "completed")]
    await again.stop(clock.monotonic() + 5)


async def test_an_abort_rule_stops_the_run_on_the_next_check(tmp_path: Path) -> None:
    rules = [{"error_ratio_above": 0.5, "min_calls": 4}]
    runtime = make(
        tmp_path, {"enabled": True, "experiments": [experiment(abort_when=rules, observe_after=0)]}
    )
    await runtime.start()
    run = runtime.start_experiment("e")
    e = runtime.experiments["e"]
    for ok in (False, False, True):
        e.observe(runtime.clock.time(), ok, not ok, None)
    runtime.check()
    assert run.state == "running"  # 3 calls: below min_calls
    e.observe(runtime.clock.time(), False, True, None)
    runtime.check()
    assert run.state == "aborted" and run.reason == "error_ratio"
    assert "75.0%" in run.message
    assert signals(runtime) == ["chaos_started", "chaos_aborted"]
    sample = runtime.context.registry.get_sample_value(
        "agent_sre_chaos_aborts_total", {"experiment": "e", "reason": "error_ratio"}
    )
    assert sample == 1
    await runtime.stop(runtime.clock.monotonic() + 5)


async def test_starting_is_refused_when_it_must_be(tmp_path: Path) -> None:
    off = make(tmp_path / "off", {"experiments": [experiment()]})
    with pytest.raises(StartRefusedError, match="disabled") as refused:
        off.start_experiment("e")
    assert refused.value.type == "chaos_disabled"
    runtime = make(
        tmp_path,
        {
            "enabled": True,
            "experiments": [
                experiment(),
                experiment(name="weekend", blackout=[{"days": ["mon"]}]),
                experiment(name="steady", steady_state={"max_error_ratio": 0.1}),
            ],
        },
    )
    await runtime.start()
    with pytest.raises(StartRefusedError) as unknown:
        runtime.start_experiment("nope")
    assert unknown.value.status == 404
    runtime.start_experiment("e")
    with pytest.raises(StartRefusedError, match="is running"):
        runtime.start_experiment("e")
    with pytest.raises(StartRefusedError, match="blackout"):
        runtime.start_experiment("weekend")
    runtime.experiments["steady"].observe(runtime.clock.time(), False, False, None)
    with pytest.raises(StartRefusedError, match=r"failed 100\.0% recently") as unsteady:
        runtime.start_experiment("steady")
    assert unsteady.value.type == "steady_state_not_met"
    await runtime.stop(runtime.clock.monotonic() + 5)


async def test_schedules_start_runs_and_blackouts_end_them(tmp_path: Path) -> None:
    clock = ManualClock(MONDAY_NOON - 60)
    scheduled = experiment(
        schedule=[{"start": "12:00", "end": "13:00"}],
        blackout=[{"start": "12:30", "end": "12:45"}],
        duration="1h",
        observe_after=0,
    )
    runtime = make(tmp_path, {"enabled": True, "experiments": [scheduled]}, clock)
    await runtime.start()
    runtime.check()
    assert runtime.experiments["e"].run is None
    clock.advance(60)
    runtime.check()
    run = runtime.experiments["e"].run
    assert run is not None and run.state == "running"
    clock.advance(30 * 60)
    runtime.check()
    assert run.state == "stopped" and run.reason == "blackout"
    clock.advance(60)
    runtime.check()  # still in the window: not started again until the next window opens
    assert runtime.experiments["e"].run is None
    await runtime.stop(clock.monotonic() + 5)


async def test_the_action_and_a_reload_stop_runs(tmp_path: Path) -> None:
    runtime = make(
        tmp_path,
        {"enabled": True, "experiments": [experiment(), experiment(name="f")]},
    )
    await runtime.start()
    runtime.start_experiment("e")
    runtime.start_experiment("f")
    done = await runtime.context.actions["stop_chaos"]({"experiment": "e", "reason": "incident"})
    assert done == "chaos experiment e stopped"
    assert runtime.experiments["e"].run is not None
    assert runtime.experiments["e"].run.reason == "action"
    new = Config.model_validate(
        {"state_dir": str(tmp_path), "chaos": {"enabled": False, "experiments": [experiment()]}}
    )
    prepared = await runtime.prepare_reload(new)
    assert prepared.commit is not None
    await prepared.commit()
    assert runtime.enabled is False and set(runtime.experiments) == {"e"}
    assert "chaos_stopped" in signals(runtime)
    assert await runtime.context.actions["stop_chaos"]({}) == "chaos stopped (nothing was running)"
    await runtime.stop(runtime.clock.monotonic() + 5)


async def test_stopping_the_daemon_records_a_running_run_as_interrupted(tmp_path: Path) -> None:
    runtime = make(tmp_path, {"enabled": True, "experiments": [experiment()]})
    await runtime.start()
    run = runtime.start_experiment("e")
    await runtime.stop(runtime.clock.monotonic() + 5)
    assert run.state == "interrupted" and run.reason == "shutdown"
    assert signals(runtime)[-1] == "chaos_interrupted"
    again = make(tmp_path, {"enabled": True, "experiments": [experiment()]})
    await again.start()
    assert again.experiments["e"].run is None  # never resumed
    stored = await again.store.get(run.id)
    assert stored is not None and stored["state"] == "interrupted"
    await again.stop(again.clock.monotonic() + 5)
