"""Cost of the incidents engine's proxy stages per call (circuit breaker, throttle), against
a do-nothing stage measured in the same run.

    .venv/bin/python bench/circuit.py [--calls 200000]

Calls are plain objects (no network): this measures the stages' own work on the call path.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from agent_sre.incidents.spec import CircuitBreakerSpec
from agent_sre_daemon.clock import SYSTEM_CLOCK
from agent_sre_daemon.incidents.breaker import CircuitBreakerStage
from agent_sre_daemon.incidents.metrics import IncidentMetrics
from agent_sre_daemon.incidents.throttle import ThrottleStage
from agent_sre_daemon.signals import SignalBus


class NoStage:
    async def on_request(self, call: Any) -> None:
        return None

    async def on_response(self, call: Any) -> None:
        return None


def calls(count: int) -> list[Any]:
    made = []
    for index in range(count):
        made.append(
            SimpleNamespace(
                route=SimpleNamespace(name="openai", config=SimpleNamespace(api="openai")),
                plan=SimpleNamespace(tool_name=None),
                identity=SimpleNamespace(agent_id=f"agent-{index % 50}"),
                status=500 if (index // 50) % 10 == 0 else 200,  # 10% of each agent's
                record=SimpleNamespace(attributes={}),
                fail=lambda kind, message: None,
                trace=None,
            )
        )
    return made


async def run(stage: Any, batch: list[Any], rounds: int) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        for call in batch:
            await stage.on_request(call)
            await stage.on_response(call)
    return (time.perf_counter() - started) / (rounds * len(batch))


def breaker(specs: list[dict[str, Any]]) -> CircuitBreakerStage:
    registry = CollectorRegistry()
    return CircuitBreakerStage(
        [CircuitBreakerSpec.model_validate(s) for s in specs],
        SYSTEM_CLOCK,
        SignalBus(registry),
        IncidentMetrics(registry),
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    batch = calls(1000)
    rounds = max(1, args.calls // len(batch))
    throttled = ThrottleStage(SYSTEM_CLOCK)
    await throttled.throttle({"agent_id": "agent-1", "requests_per_minute": "1000000"})
    cases = [
        ("baseline: a do-nothing stage", NoStage()),
        ("circuit breaker, none configured", breaker([])),
        ("circuit breaker, per route + per agent (10% errors)", breaker([
            {"name": "r", "per": "route", "error_ratio": 0.9, "min_calls": 100},
            {"name": "a", "per": "agent", "error_ratio": 0.9, "min_calls": 100},
        ])),
        ("throttle, one agent throttled", throttled),
    ]  # fmt: skip
    baseline = 0.0
    print(f"{'stage':55} {'per call':>10} {'ratio':>8}")
    for name, stage in cases:
        await run(stage, batch, 2)  # warm up
        per_call = await run(stage, batch, rounds)
        baseline = baseline or per_call
        print(f"{name:55} {per_call * 1e9:8.0f}ns {per_call / baseline:7.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
