"""Canaries judged on real proxied calls to the stand-in provider serving two models of set
quality; steps are moved with the test's clock instead of waiting."""

from __future__ import annotations

from typing import Any

import pytest

from tests.delivery.conftest import BASE, CAND, ModelQuality, RigFactory, rollout

MINUTES_10 = 600.0


@pytest.mark.parametrize(
    ("quality", "check"),
    [
        (ModelQuality(error_rate=0.5), {"metric": "success_ratio", "max_relative_change": 0.05}),
        (ModelQuality(latency=0.04), {"metric": "latency_p95", "max_relative_change": 0.5}),
        (ModelQuality(reply_words=60), {"metric": "cost_per_call", "max_relative_change": 0.2}),
    ],
    ids=["errors", "latency", "cost"],
)
async def test_a_worse_canary_is_rolled_back_at_the_first_step_with_enough_data(
    make_rig: RigFactory, quality: ModelQuality, check: dict[str, Any]
) -> None:
    spec = rollout(analysis={"min_samples": 20, "checks": [check]})
    rig = await make_rig(spec)
    rig.provider.models[CAND] = quality
    canary = rig.delivery.rollouts["canary"]

    # a small sample waits, even when the step's time is up
    for index in range(6):
        await rig.ask(f"small-{index}")
    rig.clock.advance(MINUTES_10 + 1)
    assert rig.delivery.evaluate() == []
    assert canary.state.analysis["verdict"] == "wait"
    assert canary.state.phase == "progressing"
    assert canary.state.step == 0
    assert "waits for samples" in canary.state.reason

    await rig.calls_until("canary", 20)
    [event] = await rig.delivery.evaluate_aside()  # as the node's timer does
    assert event.kind == "rolled_back"
    assert canary.state.phase == "rolled_back"
    assert canary.state.weight == 0
    assert check["metric"] in canary.state.reason
    assert canary.state.step == 0  # at the first step
    assert rig.signals()[-1] == "rollout_rolled_back"
    assert (
        rig.metric("agent_sre_rollout_weight", {"rollout": "canary", "variant": "candidate"}) == 0
    )
    assert rig.metric("agent_sre_rollout_phase", {"rollout": "canary"}) == 4

    # every call goes back to the baseline at once
    asked = rig.provider.calls
    for index in range(10):
        assert await rig.ask(f"after-{index}") == BASE
    assert {r.json()["model"] for r in rig.provider.requests[asked:]} == {BASE}


async def test_an_equal_canary_is_promoted_through_all_steps(make_rig: RigFactory) -> None:
    checks = [
        {"metric": "success_ratio", "threshold": 0.9, "max_relative_change": 0.02},
        {"metric": "cost_per_call", "max_relative_change": 0.1},
        {"metric": "tokens_per_call", "max_relative_change": 0.1},
    ]
    spec = rollout(
        steps=[
            {"weight": 30, "duration": "5m"},
            {"weight": 60, "duration": "5m"},
            {"weight": 90, "pause": True},
        ],
        analysis={"min_samples": 10, "checks": checks},
    )
    rig = await make_rig(spec)
    rig.provider.models[CAND] = ModelQuality()  # the same quality as the baseline
    canary = rig.delivery.rollouts["canary"]
    for step in range(2):
        assert canary.state.step == step
        await rig.calls_until("canary", 10)
        assert rig.delivery.evaluate() == []  # passing, but the step is not over
        rig.clock.advance(301)
        [event] = rig.delivery.evaluate()
        assert event.kind == "step"
    # the last step awaits promotion, and stays while its analysis passes
    assert (canary.state.phase, canary.state.paused_by) == ("paused", "step")
    await rig.calls_until("canary", 10)
    rig.clock.advance(3600)
    assert rig.delivery.evaluate() == []
    assert canary.analysis().verdict == "pass"
    rig.delivery.operate("canary", "promote")
    assert canary.state.phase == "promoted"
    assert rig.signals() == ["rollout_step", "rollout_step", "rollout_promoted"]

    asked = rig.provider.calls
    for index in range(5):
        assert await rig.ask(f"promoted-{index}") == CAND
    assert {r.json()["model"] for r in rig.provider.requests[asked:]} == {CAND}
    assert (
        rig.metric("agent_sre_rollout_weight", {"rollout": "canary", "variant": "candidate"}) == 1
    )


async def test_one_task_never_mixes_variants(make_rig: RigFactory) -> None:
    rig = await make_rig(rollout())
    seen: dict[str, set[str]] = {}
    for task in range(40):
        for _ in range(3):
            seen.setdefault(f"task-{task}", set()).add(await rig.ask(f"task-{task}"))
    assert all(len(models) == 1 for models in seen.values()), seen
    assert {next(iter(m)) for m in seen.values()} == {BASE, CAND}  # 50%: both taken

    # without a task id, the trace id keeps a call tree together
    trace = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    assert len({await rig.ask(None, traceparent=trace) for _ in range(5)}) == 1

    # the variant is on each call's span, and the provider is the route's
    spans = rig.span_attrs()
    assert {s["agent_sre.rollout"] for s in spans} == {"canary"}
    by_variant = {s["agent_sre.rollout.variant"]: s["gen_ai.request.model"] for s in spans}
    assert by_variant == {"baseline": BASE, "candidate": CAND}
    assert {s["gen_ai.provider.name"] for s in spans} == {"openai"}


async def test_calls_for_other_models_and_routes_are_left_alone(make_rig: RigFactory) -> None:
    rig = await make_rig(rollout(steps=[{"weight": 100, "duration": "1h"}]))
    assert await rig.ask("t1") == CAND
    assert await rig.ask("t1", model="gpt-4o-mini") == "gpt-4o-mini"
    assert "agent_sre.rollout" not in rig.span_attrs()[-1]


async def test_the_slo_burning_past_its_limit_rolls_back(make_rig: RigFactory) -> None:
    class Burning:
        burn = 1.0

        def reports(self, now: float) -> list[Any]:
            from types import SimpleNamespace

            budget = SimpleNamespace(current_burn_rate=self.burn)
            return [SimpleNamespace(name="llm", overall=SimpleNamespace(budget=budget))]

    slo = Burning()
    spec = rollout(analysis={"min_samples": 20, "slo": "llm", "max_burn_rate": 6})
    slos = [{"name": "llm", "target": 0.99, "window": "28d", "sli": {"kind": "llm_success"}}]
    rig = await make_rig(spec, services={"slo": slo}, slos=slos)
    assert rig.delivery.evaluate() == []
    slo.burn = 14.4
    [event] = rig.delivery.evaluate()
    assert event.kind == "rolled_back"
    assert "SLO llm burns at 14.4x" in rig.delivery.rollouts["canary"].state.reason


async def test_streams_and_anthropic_calls_take_part(make_rig: RigFactory) -> None:
    import anthropic

    spec = rollout(steps=[{"weight": 100, "duration": "1h"}])
    claude = rollout(
        name="claude",
        route="anthropic",
        baseline="claude-3-5-haiku-latest",
        candidate="claude-3-7-sonnet-latest",
        steps=[{"weight": 100, "duration": "1h"}],
    )
    rig = await make_rig(spec, claude)
    stream = await rig.client().chat.completions.create(
        model=BASE,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"X-Agent-Task-Id": "streamed"},
    )
    models = {chunk.model async for chunk in stream}
    assert models == {CAND}
    samples = rig.delivery.rollouts["canary"].samples["candidate"]
    assert len(samples.ttft) == 1  # time to first token, measured on the stream
    assert samples.tokens[0] > 0

    client = anthropic.AsyncAnthropic(
        base_url=rig.url + "/anthropic", api_key="sk-ant-x", max_retries=0
    )
    reply = await client.messages.create(
        model="claude-3-5-haiku-latest",
        max_tokens=32,
        messages=[{"role": "user", "content": "hi"}],
    )
    await client.close()
    assert reply.model == "claude-3-7-sonnet-latest"
    assert rig.provider.requests[-1].path == "/v1/messages"
    span = rig.span_attrs()[-1]
    assert (span["agent_sre.rollout"], span["gen_ai.provider.name"]) == ("claude", "anthropic")
