"""Class 1 of issue 18, numbers kept by an earlier version: a throttle saved before the
numbers gate (``until=inf`` from a 400-digit ``for``, a denormal pace) is not put back on
restart, so ``GET /v1/throttles`` stays JSON and the agent's next call is no 500; the
action ``throttle_agent`` reads its parameters through the same gate as the API."""

from __future__ import annotations

import json
import math

import pytest

from agent_sre.incidents.throttles import PutBy
from agent_sre_daemon.clock import ManualClock
from agent_sre_daemon.incidents.store import KeptThrottle
from agent_sre_daemon.incidents.throttle import ThrottleStage


def test_throttles_kept_with_bad_numbers_are_not_restored() -> None:
    clock = ManualClock()
    now = clock.time()
    stage = ThrottleStage(clock)
    kept = [
        KeptThrottle("forever", 6.0, math.inf, now, PutBy(operator="old")),
        KeptThrottle("nan", math.nan, now + 60, now),
        KeptThrottle("denormal", 5e-324, now + 60, now),
        KeptThrottle("centuries", 6.0, now + 1e12, now),
        KeptThrottle("fine", 6.0, now + 600, now),
    ]
    assert stage.restore(kept, now) == 1
    rows = [t.to_dict(now) for t in stage.in_force(now)]
    assert [r["agent_id"] for r in rows] == ["fine"]
    json.dumps(rows, allow_nan=False)


@pytest.mark.parametrize(
    "params",
    [
        {"agent_id": "a", "requests_per_minute": "nan"},
        {"agent_id": "a", "requests_per_minute": "5e-324"},
        {"agent_id": "a", "for": "inf"},
        {"agent_id": "a", "for": "1" * 400},
        {"agent_id": "a", "for": "1" * 400 + "s"},
    ],
)
async def test_the_throttle_action_refuses_bad_numbers(params: dict[str, str]) -> None:
    stage = ThrottleStage(ManualClock())
    with pytest.raises(ValueError):
        await stage.throttle(params)
    assert stage.in_force(ManualClock().time()) == []
