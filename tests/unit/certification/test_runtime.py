"""The certification component on a manual clock: evidence in, tiers out, tier changes as
signals, budget exhaustions heard on the bus, and everything back after a restart."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from agent_sre.config import Config
from agent_sre.signals import Severity, Signal
from agent_sre.tracing.conventions import AgentSpanKind
from agent_sre.tracing.view import AgentSpan
from agent_sre_daemon.certification.runtime import CertificationRuntime
from agent_sre_daemon.clock import ManualClock
from tests.support.context import node_context

if TYPE_CHECKING:
    from pathlib import Path


def config(tmp_path: Path) -> Config:
    return Config.model_validate(
        {
            "state_dir": str(tmp_path),
            "slos": [
                {"name": "ok", "target": 0.9, "window": "3d", "sli": {"kind": "tool_call_success"}}
            ],  # fmt: skip
            "certification": {
                "bucket": "1m",
                "tiers": [
                    {
                        "name": "bronze",
                        "slo": {"window": "1h", "min_events": 10},
                        "budget": {"window": "1h"},
                    },
                    {
                        "name": "silver",
                        "trust": {"window": "1h", "min_average": 0.9, "required": True},
                    },
                ],  # fmt: skip
            },
        }
    )


def span(agent: str, version: str, error: bool = False, trust: float | None = None) -> AgentSpan:
    attrs: dict[str, str | float] = {"agent.id": agent, "agent.version": version}
    if trust is not None:
        attrs["agent.trust_score"] = trust
    return AgentSpan(AgentSpanKind.TOOL_CALL, True, "t", b"\1" * 16, b"\2" * 8, 0, 1, error,
                     attrs)  # fmt: skip


def test_tiers_follow_the_evidence_and_survive_a_restart(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        context = node_context(config(tmp_path), clock)
        runtime = CertificationRuntime(context)
        await runtime.start()
        heard = context.bus.subscribe("test")
        (observer,) = runtime.span_observers()
        for _ in range(20):
            observer.observe(span("a", "1", trust=0.95), clock.time())
            observer.observe(span("b", "1"), clock.time())
        await runtime.evaluate_all()
        assert runtime.verdict("a", "1").tier == "silver"
        assert runtime.verdict("b", "1").tier == "bronze"
        assert runtime.missing_for("b", "1", "silver") == [
            "silver: no span carried a usable agent.trust_score within 1h (required)"
        ]
        gained = [heard.get_nowait(), heard.get_nowait()]
        assert {(s.type, s.labels["agent_id"], s.details["new"]) for s in gained if s} == {
            ("certification_tier_gained", "a", "silver"),
            ("certification_tier_gained", "b", "bronze"),
        }
        # b exhausts a budget: it loses bronze, and says why
        context.bus.publish(Signal(type="budget_exhausted", source="budgets",
                                   severity=Severity.CRITICAL, at=clock.time(),
                                   message="budget 'daily' at 100%",
                                   labels={"agent_id": "b", "budget": "daily"}))  # fmt: skip
        await asyncio.sleep(0.05)
        clock.advance(30)
        await runtime.evaluate_all()
        assert runtime.verdict("b", "1").tier is None
        assert heard.get_nowait().type == "budget_exhausted"  # type: ignore[union-attr]
        lost = heard.get_nowait()
        assert lost is not None and lost.type == "certification_tier_lost"
        assert lost.severity is Severity.WARNING and "daily" in lost.message
        await runtime.stop(clock.monotonic() + 5)

        # a restart: the same verdicts, and nothing announced again
        clock.advance(60)
        context2 = node_context(config(tmp_path), clock)
        again = CertificationRuntime(context2)
        await again.start()
        heard2 = context2.bus.subscribe("test")
        await again.evaluate_all()
        assert again.verdict("a", "1").tier == "silver"
        assert again.verdict("b", "1").tier is None
        assert "daily" in again.verdict("b", "1").missing[0]
        assert heard2.get_nowait() is None
        # an hour on, the exhaustion and the spans are out of every window
        clock.advance(3600 * 2)
        await again.evaluate_all()
        assert again.verdict("a", "1").tier is None
        await again.stop(clock.monotonic() + 5)

    asyncio.run(scenario())


def test_a_reload_keeps_the_evidence(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        context = node_context(config(tmp_path), clock)
        runtime = CertificationRuntime(context)
        await runtime.start()
        (observer,) = runtime.span_observers()
        for _ in range(20):
            observer.observe(span("a", "1"), clock.time())
        new = config(tmp_path).model_copy(
            update={
                "certification": config(tmp_path).certification.model_copy(
                    update={"max_metric_series": 3}
                )
            }  # fmt: skip
        )
        prepared = await runtime.prepare_reload(new)
        assert prepared.needs_restart == [] and prepared.commit is not None
        await prepared.commit()
        assert runtime.verdict("a", "1").tier == "bronze"
        await runtime.stop(clock.monotonic() + 5)

    asyncio.run(scenario())


def test_latest_is_the_most_recently_seen_version(tmp_path: Path) -> None:
    clock = ManualClock()
    runtime = CertificationRuntime(node_context(config(tmp_path), clock))
    (observer,) = runtime.span_observers()
    observer.observe(span("a", "1"), clock.time())
    clock.advance(120)
    observer.observe(span("a", "2"), clock.time())
    latest = runtime.latest("a")
    assert latest is not None and latest["version"] == "2" and latest["tier"] is None
    assert runtime.latest("nobody") is None
