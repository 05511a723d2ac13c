"""State across restarts and reloads, shadow mode, upstream and agent-version rollouts, and
the actions automatic responses call."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

import pytest

from agent_sre.config import Config
from agent_sre.delivery.assign import CANDIDATE as CAND_VARIANT
from tests.delivery.conftest import BASE, CAND, ModelQuality, RigFactory, StepClock, rollout
from tests.fakes.provider import FakeProvider

if TYPE_CHECKING:
    from pathlib import Path


async def test_state_survives_a_restart(make_rig: RigFactory, tmp_path: Path) -> None:
    clock = StepClock()
    state = tmp_path / "kept"
    spec = rollout(
        analysis={
            "min_samples": 5,
            "checks": [{"metric": "success_ratio", "max_relative_change": 0.05}],
        }
    )
    first = await make_rig(spec, clock=clock, state_dir=state)
    await first.calls_until("canary", 5)
    clock.advance(601)
    [event] = first.delivery.evaluate()
    assert event.kind == "step"
    await first.stop()

    again = await make_rig(spec, clock=clock, state_dir=state)
    canary = again.delivery.rollouts["canary"]
    assert (canary.state.phase, canary.state.step, canary.state.weight) == ("progressing", 1, 100)
    assert [e.kind for e in canary.state.events] == ["started", "step"]
    assert await again.ask("any-task") == CAND  # step 2 sends everything to the candidate
    await again.stop()

    # a changed rollout starts over at its first step
    changed = await make_rig({**spec, "candidate": "gpt-4.1-mini"}, clock=clock, state_dir=state)
    assert changed.delivery.rollouts["canary"].state.step == 0


async def test_the_steps_samples_count_across_a_restart(
    make_rig: RigFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = StepClock()
    state = tmp_path / "kept"
    checks = [
        {"metric": "success_ratio", "max_relative_change": 0.05},
        {"metric": "cost_per_task", "max_relative_change": 10},
    ]
    spec = rollout(analysis={"min_samples": 20, "checks": checks})
    first = await make_rig(spec, clock=clock, state_dir=state)
    await first.calls_until("canary", 12)
    before = {w: s.calls for w, s in first.delivery.rollouts["canary"].samples.items()}
    kept_tasks = dict(first.delivery.rollouts["canary"].samples[CAND_VARIANT].task_cost)
    assert len(kept_tasks) >= 12  # cost per task, for cost_per_task
    await first.delivery.evaluate_aside()  # a step check writes them (a worker thread)
    assert (state / "rollout-samples.json").exists()
    await first.stop()

    with caplog.at_level(logging.INFO, "agent_sre.delivery"):
        again = await make_rig(spec, clock=clock, state_dir=state)
    canary = again.delivery.rollouts["canary"]
    assert {w: s.calls for w, s in canary.samples.items()} == before
    assert canary.samples[CAND_VARIANT].task_cost == kept_tasks
    assert "rollout samples restored: canary" in caplog.text
    await again.calls_until("canary", 20)
    total = {w: s.calls for w, s in canary.samples.items()}
    # the calls after the restart alone are too few for a verdict: the analysis would wait
    assert any(total[w] - before[w] < 20 for w in total)
    clock.advance(601)
    [event] = await again.delivery.evaluate_aside()
    assert event.message == "rollout canary at step 2 (100%): step 1 passed its analysis"
    judged = canary.state.analysis["checks"][0]
    assert (judged["baseline_samples"], judged["canary_samples"]) == (
        total["baseline"],
        total["candidate"],
    )
    await again.stop()

    # the new step starts without samples, after a restart too
    third = await make_rig(spec, clock=clock, state_dir=state)
    assert [s.calls for s in third.delivery.rollouts["canary"].samples.values()] == [0, 0]


async def test_samples_that_cannot_be_kept_or_read_are_logged_and_the_step_goes_on(
    make_rig: RigFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "odd"
    clock = StepClock()
    rig = await make_rig(rollout(), clock=clock, state_dir=state)
    await rig.calls_until("canary", 3)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    rig.delivery.samples_path = blocker / "state" / "rollout-samples.json"
    with caplog.at_level(logging.ERROR, "agent_sre.delivery"):
        await rig.delivery.evaluate_aside()
    assert "cannot save rollout samples" in caplog.text
    assert await rig.ask("t") in (BASE, CAND)
    rig.delivery.samples_path = state / "rollout-samples.json"
    await rig.stop()

    # a damaged file: logged, the step starts without its samples, the rollout keeps its step
    caplog.clear()
    (state / "rollout-samples.json").write_text("{not json")
    with caplog.at_level(logging.ERROR, "agent_sre.delivery"):
        again = await make_rig(rollout(), clock=clock, state_dir=state)
    assert "cannot restore rollout samples" in caplog.text
    assert [s.calls for s in again.delivery.rollouts["canary"].samples.values()] == [0, 0]
    await again.calls_until("canary", 3)
    await again.stop()

    # a damaged record of one rollout: logged, that step starts without
    caplog.clear()
    kept = json.loads((state / "rollout-samples.json").read_text())
    kept["rollouts"]["canary"]["samples"]["candidate"]["latency"] = "not base64!"
    (state / "rollout-samples.json").write_text(json.dumps(kept))
    with caplog.at_level(logging.ERROR, "agent_sre.delivery"):
        third = await make_rig(rollout(), clock=clock, state_dir=state)
    assert "samples of rollout canary unreadable" in caplog.text
    assert [s.calls for s in third.delivery.rollouts["canary"].samples.values()] == [0, 0]
    await third.stop()

    # a changed rollout starts over: the old step's samples are not its own
    fourth = await make_rig(rollout(), clock=clock, state_dir=state)
    await fourth.calls_until("canary", 3)
    await fourth.stop()
    assert json.loads((state / "rollout-samples.json").read_text())["rollouts"]["canary"]
    changed = await make_rig(rollout(candidate="gpt-4.1-mini"), clock=clock, state_dir=state)
    assert [s.calls for s in changed.delivery.rollouts["canary"].samples.values()] == [0, 0]


async def test_an_unreadable_state_file_starts_over_and_says_so(
    make_rig: RigFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "bad"
    state.mkdir()
    (state / "rollouts.json").write_text("{not json")
    with caplog.at_level(logging.ERROR, "agent_sre.delivery"):
        rig = await make_rig(rollout(), state_dir=state)
    assert "cannot restore rollouts" in caplog.text
    assert "rollouts.json" in caplog.text
    assert rig.delivery.rollouts["canary"].state.step == 0
    rig.delivery.save()
    assert json.loads((state / "rollouts.json").read_text())["version"] == 1


async def test_a_state_dir_that_cannot_be_written_is_logged_and_calls_go_on(
    make_rig: RigFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    rig = await make_rig(rollout())
    rig.delivery.path = blocker / "state" / "rollouts.json"  # its directory cannot be made
    with caplog.at_level(logging.ERROR, "agent_sre.delivery"):
        rig.delivery.evaluate()
    assert "cannot save rollout state" in caplog.text
    assert await rig.ask("t") in (BASE, CAND)


async def test_shadow_answers_never_reach_the_client(make_rig: RigFactory) -> None:
    spec = rollout(
        mode="shadow",
        steps=[{"weight": 100, "duration": "1h"}],
        analysis={
            "min_samples": 5,
            "checks": [{"metric": "success_ratio", "max_relative_change": 0.05}],
        },
        shadow_budget_usd=1.0,
    )
    rig = await make_rig(spec)
    rig.provider.models[CAND] = ModelQuality(error_rate=1.0)  # every shadow call fails
    for index in range(6):
        assert await rig.ask(f"t{index}") == BASE  # the client gets the baseline, always
    await asyncio.gather(*rig.delivery.shadow.tasks)
    asked = [r.json()["model"] for r in rig.provider.requests]
    assert asked.count(BASE) == 6
    assert asked.count(CAND) == 6  # mirrored
    spans = rig.span_attrs()
    assert {s["agent_sre.rollout.variant"] for s in spans} == {"baseline"}
    assert all(s["agent_sre.rollout.shadowed"] for s in spans)
    labels = {"rollout": "canary", "variant": "shadow", "result": "error"}
    assert rig.metric("agent_sre_rollout_requests_total", labels) == 6
    [event] = rig.delivery.evaluate()
    assert event.kind == "rolled_back"
    await rig.ask("after")
    assert rig.provider.calls == 13  # rolled back: no more mirroring


async def test_shadow_cost_is_counted_apart_and_bounded(make_rig: RigFactory) -> None:
    spec = rollout(mode="shadow", steps=[{"weight": 100, "duration": "1h"}], shadow_budget_usd=1e-9)
    rig = await make_rig(spec)
    for index in range(4):
        await rig.ask(f"t{index}")
        await asyncio.gather(*rig.delivery.shadow.tasks)
    asked = [r.json()["model"] for r in rig.provider.requests]
    # a copy reserves its worst case first, as the agent's own call does: none fits
    assert asked.count(CAND) == 0
    assert rig.metric("agent_sre_rollout_shadow_cost_usd_total", {"rollout": "canary"}) == 0
    assert rig.delivery.shadow.spent.get("canary", 0.0) <= 1e-9

    # a budget that fits one reservation at a time (4096 tokens of gpt-4.1 output, $0.033)
    spec = rollout(mode="shadow", steps=[{"weight": 100, "duration": "1h"}], shadow_budget_usd=0.05)
    rig = await make_rig(spec)
    for index in range(40):
        await rig.ask(f"u{index}")
    await asyncio.gather(*rig.delivery.shadow.tasks)
    shadow = rig.delivery.shadow
    assert 0 < shadow.spent["canary"] <= 0.05
    assert shadow.reserved["canary"] == 0 and shadow.in_flight["canary"] == 0


async def test_an_upstream_rollout_sends_the_candidates_share_elsewhere(
    make_rig: RigFactory,
) -> None:
    other = FakeProvider()
    await other.start()
    try:
        spec = rollout(
            vary="upstream",
            baseline="",
            candidate=other.url,
            steps=[{"weight": 100, "duration": "1h"}],
        )
        rig = await make_rig(spec)
        assert await rig.ask("t1") == BASE  # the model is untouched
        assert (rig.provider.calls, other.calls) == (0, 1)
        assert other.requests[0].path == "/v1/chat/completions"
    finally:
        await other.stop()


async def test_an_agent_version_rollout_observes_by_version(make_rig: RigFactory) -> None:
    spec = rollout(vary="agent_version", baseline="v1", candidate="v2")
    rig = await make_rig(spec)
    await rig.ask("a", **{"X-Agent-Version": "v1"})
    await rig.ask("b", **{"X-Agent-Version": "v2"})
    await rig.ask("c", **{"X-Agent-Version": "v3"})
    await rig.ask("d")
    canary = rig.delivery.rollouts["canary"]
    assert {v: s.calls for v, s in canary.samples.items()} == {"baseline": 1, "candidate": 1}
    assert {r.json()["model"] for r in rig.provider.requests} == {BASE}  # nothing rewritten
    variants = [s.get("agent_sre.rollout.variant") for s in rig.span_attrs()]
    assert variants == ["baseline", "candidate", None, None]


async def test_actions_pause_and_roll_back(make_rig: RigFactory) -> None:
    rig = await make_rig(rollout(), rollout(name="other"))
    actions = rig.context.actions
    done = await actions["pause_rollout"]({"rollout": "canary", "reason": "incident 7"})
    assert done == "rollouts paused: canary"
    assert rig.delivery.rollouts["canary"].state.reason == "paused by incident 7"
    assert await actions["pause_rollout"]({"rollout": "missing"}) == "no rollout paused"
    done = await actions["rollback_rollout"]({"route": "openai"})
    assert done == "rollouts rolled back: canary, other"
    assert {r.state.phase for r in rig.delivery.rollouts.values()} == {"rolled_back"}
    assert rig.signals()[-2:] == ["rollout_rolled_back", "rollout_rolled_back"]


async def test_a_reload_keeps_unchanged_rollouts_and_restarts_changed_ones(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig(rollout(), rollout(name="other"))
    rig.delivery.operate("canary", "pause")
    rig.delivery.operate("other", "pause")
    data = rig.context.config.model_dump(mode="json")
    data["rollouts"]["rollouts"][1]["candidate"] = "gpt-4.1-mini"
    data["rollouts"]["rollouts"].append(rollout(name="third"))
    prepared = await rig.delivery.prepare_reload(Config.model_validate(data))
    assert prepared.commit is not None
    await prepared.commit()
    phases = {n: r.state.phase for n, r in rig.delivery.rollouts.items()}
    assert phases == {"canary": "paused", "other": "progressing", "third": "progressing"}
    assert "canary" in {r.name for r in rig.delivery.by_route["openai"]}


async def test_rollouts_posted_to_the_api_are_checked_and_kept(
    make_rig: RigFactory, tmp_path: Path
) -> None:
    from agent_sre.delivery.spec import RolloutSpec

    clock = StepClock()
    rig = await make_rig(clock=clock, state_dir=tmp_path / "posted")
    rig.delivery.declare(RolloutSpec.model_validate(rollout(name="posted")))
    with pytest.raises(ValueError, match="exists"):
        rig.delivery.declare(RolloutSpec.model_validate(rollout(name="posted")))
    with pytest.raises(ValueError, match="route: no proxy route named 'nope'"):
        rig.delivery.declare(RolloutSpec.model_validate(rollout(name="x", route="nope")))
    await rig.stop()
    again = await make_rig(clock=clock, state_dir=tmp_path / "posted")
    assert list(again.delivery.rollouts) == ["posted"]


async def test_deleting_a_promoted_rollout_says_its_candidate_stops(make_rig: RigFactory) -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from agent_sre.delivery.spec import RolloutSpec

    rig = await make_rig()
    spec = rollout(name="posted", steps=[{"weight": 100, "duration": "10m"}])
    rig.delivery.declare(RolloutSpec.model_validate(spec))
    rig.delivery.operate("posted", "promote")
    assert await rig.ask("t1") == CAND
    app = web.Application()
    app.add_routes(rig.delivery.admin_routes())
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        answer = await client.delete("/v1/rollouts/posted")
        assert answer.status == 200
        assert (await answer.json())["message"] == (
            "rollout posted deleted (it was promoted); calls no longer take its candidate"
        )
        again = await client.delete("/v1/rollouts/posted")
        assert again.status == 404
        assert (await again.json())["error"]["type"] == "rollout_not_found"
    assert await rig.ask("t1") == BASE
    assert rig.signals() == ["rollout_started", "rollout_promoted"]  # no rollback signal


async def test_a_shadow_upstream_that_is_down_never_disturbs_the_client(
    make_rig: RigFactory,
) -> None:
    spec = rollout(vary="upstream", baseline="", candidate="http://127.0.0.1:9",
                   mode="shadow", steps=[{"weight": 100, "duration": "1h"}])  # fmt: skip
    rig = await make_rig(spec)
    assert await rig.ask("t1") == BASE
    await asyncio.gather(*rig.delivery.shadow.tasks)
    canary = rig.delivery.rollouts["canary"]
    assert list(canary.samples["candidate"].success) == [0.0]
    assert list(canary.samples["baseline"].success) == [1.0]
    labels = {"rollout": "canary", "variant": "shadow", "result": "error"}
    assert rig.metric("agent_sre_rollout_requests_total", labels) == 1
