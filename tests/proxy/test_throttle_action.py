"""``throttle_agent``, the automatic response: a throttled agent's calls go through at the
set pace for a while, the rest get ``agent_throttled`` (429, Retry-After); others are not
affected; bad parameters are refused with a message."""

from __future__ import annotations

from typing import TYPE_CHECKING

import openai
import pytest

from agent_sre_daemon.clock import ManualClock
from agent_sre_daemon.incidents.throttle import ThrottleStage

if TYPE_CHECKING:
    from tests.proxy.conftest import ProxyFactory

MESSAGES = [{"role": "user", "content": "hi"}]


async def test_a_throttled_agent_is_paced_for_a_while(make_proxy: ProxyFactory) -> None:
    clock = ManualClock()
    stage = ThrottleStage(clock)
    proxy = await make_proxy(clock=clock, stages=[stage])
    client = openai.AsyncOpenAI(base_url=f"{proxy.url}/openai/v1", api_key="sk-x", max_retries=0)
    done = await stage.throttle({"agent_id": "a1", "requests_per_minute": "2", "for": "5m"})
    assert done == "agent a1 throttled to 2 requests a minute for 300s"

    async def call(agent: str) -> None:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Agent-Id": agent}
        )

    await call("a1")
    with pytest.raises(openai.RateLimitError) as throttled:
        await call("a1")
    assert throttled.value.response.headers["retry-after"] == "30"
    assert throttled.value.response.headers["x-agent-sre-error"] == "agent_throttled"
    await call("a2")  # another agent is not affected
    clock.advance(30)
    await call("a1")
    clock.advance(301)  # the throttle lapses
    for _ in range(3):
        await call("a1")
    assert stage.throttled == {}

    await stage.throttle({"agent_id": "a3", "for": "600"})
    assert await stage.unthrottle({"agent_id": "a3"}) == "agent a3 no longer throttled"
    assert await stage.unthrottle({"agent_id": "a3"}) == "agent a3 was not throttled"
    with pytest.raises(ValueError, match="above 0"):
        await stage.throttle({"agent_id": "a4", "requests_per_minute": "0"})
    with pytest.raises(ValueError, match="not a duration"):
        await stage.throttle({"agent_id": "a4", "for": "soon"})
    with pytest.raises(KeyError):
        await stage.throttle({})
