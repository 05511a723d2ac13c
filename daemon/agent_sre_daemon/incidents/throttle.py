"""Throttles automatic responses put on agents (``throttle_agent``): a proxy stage in the
``admission`` slot that lets a throttled agent's calls through at a set rate for a while,
and answers the rest ``agent_throttled`` (429 with Retry-After, as the cost guard's own
rate limits do)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_sre.cost.ratelimit import TokenBucket
from agent_sre.units import parse_duration
from agent_sre_daemon.errors import proxy_error

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aiohttp import web

    from agent_sre_daemon.clock import Clock
    from agent_sre_daemon.proxy.call import Call
    from agent_sre_daemon.proxy.stage import StageSlot

DEFAULT_RPM = 6.0
DEFAULT_FOR = 600.0


class ThrottleStage:
    name = "throttle"
    slot: StageSlot = "admission"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.throttled: dict[str, tuple[TokenBucket, float, float]] = {}
        """agent id -> (bucket, requests per minute, until)"""

    # hot path: per proxied call
    async def on_request(self, call: Call) -> web.StreamResponse | None:
        if not self.throttled:
            return None
        agent = call.identity.agent_id
        entry = self.throttled.get(agent)
        if entry is None:
            return None
        bucket, rpm, until = entry
        now = self.clock.time()
        if now >= until:
            del self.throttled[agent]
            return None
        wait = bucket.wait_for(1.0, now)
        if wait > 0:
            message = f"agent {agent!r} is throttled to {rpm:g} requests a minute by a rule"
            call.fail("agent_throttled", message)
            return proxy_error(call.route.config.api, "agent_throttled", message, wait)
        bucket.take(1.0, now)
        return None

    async def on_response(self, call: Call) -> None:
        return None

    async def throttle(self, params: Mapping[str, str]) -> str:
        """``throttle_agent``: ``agent_id``, ``requests_per_minute`` (6), ``for`` (10m).

        Raises:
            KeyError, ValueError: a parameter is missing or not a number / duration.
        """
        agent = params["agent_id"]
        rpm = float(params.get("requests_per_minute") or DEFAULT_RPM)
        if rpm <= 0:
            raise ValueError(f"requests_per_minute must be above 0, not {rpm:g}")
        given = params.get("for") or DEFAULT_FOR
        try:
            lasting = float(given)
        except ValueError:
            lasting = parse_duration(given)
        until = self.clock.time() + lasting
        # a burst of one: the agent gets its first call, then the set pace
        self.throttled[agent] = (TokenBucket(rate=rpm / 60.0, capacity=1.0), rpm, until)
        return f"agent {agent} throttled to {rpm:g} requests a minute for {lasting:g}s"

    async def unthrottle(self, params: Mapping[str, str]) -> str:
        agent = params["agent_id"]
        was = self.throttled.pop(agent, None) is not None
        return f"agent {agent} no longer throttled" if was else f"agent {agent} was not throttled"
