"""Throttles automatic responses put on agents (``throttle_agent``): a proxy stage in the
``admission`` slot that lets a throttled agent's calls through at a set rate for a while,
and answers the rest ``agent_throttled`` (429 with Retry-After, as the cost guard's own
rate limits do).

Each throttle is also written to a :class:`ThrottleKeeper` (the incidents engine's SQLite
file), so a restart or a crash does not free a runaway agent: :meth:`ThrottleStage.restore`
puts the throttles still in force back at start. Writes happen when a throttle is put on or
lifted, never per call; a lapsed throttle is dropped from memory by the next call of its
agent and from the file at the next start or write.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from agent_sre.cost.ratelimit import TokenBucket
from agent_sre.units import parse_duration
from agent_sre_daemon.errors import proxy_error
from agent_sre_daemon.incidents.store import KeptThrottle
from agent_sre_daemon.stores.errors import StorageError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from aiohttp import web

    from agent_sre_daemon.clock import Clock
    from agent_sre_daemon.proxy.call import Call
    from agent_sre_daemon.proxy.stage import StageSlot

log = logging.getLogger("agent_sre.incidents")

DEFAULT_RPM = 6.0
DEFAULT_FOR = 600.0


class ThrottleKeeper(Protocol):
    """Where throttles outlive the process (:class:`~.store.IncidentStore`)."""

    async def keep_throttle(self, throttle: KeptThrottle, now: float) -> None:
        """Raises: StorageError."""
        ...

    async def drop_throttle(self, agent_id: str) -> None:
        """Raises: StorageError."""
        ...


class ThrottleStage:
    name = "throttle"
    slot: StageSlot = "admission"

    def __init__(self, clock: Clock, keeper: ThrottleKeeper | None = None) -> None:
        self.clock = clock
        self.keeper = keeper
        """None: throttles live in memory only."""
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

    def restore(self, kept: Iterable[KeptThrottle], now: float) -> int:
        """Puts back the throttles a previous run kept (lapsed ones are skipped); returns how
        many. The pace starts over without the burst of one: a restart gives the agent no
        extra call."""
        restored = 0
        for throttle in kept:
            if throttle.until <= now or throttle.requests_per_minute <= 0:
                continue
            rpm = throttle.requests_per_minute
            bucket = TokenBucket(rate=rpm / 60.0, capacity=1.0, level=0.0, updated=now)
            self.throttled[throttle.agent_id] = (bucket, rpm, throttle.until)
            restored += 1
        return restored

    async def throttle(self, params: Mapping[str, str]) -> str:
        """``throttle_agent``: ``agent_id``, ``requests_per_minute`` (6), ``for`` (10m).

        The throttle holds at once; when it cannot be written to the keeper it holds in
        memory only, and the answer (the incident's timeline) and the log say so.

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
        now = self.clock.time()
        until = now + lasting
        # a burst of one: the agent gets its first call, then the set pace
        self.throttled[agent] = (TokenBucket(rate=rpm / 60.0, capacity=1.0), rpm, until)
        done = f"agent {agent} throttled to {rpm:g} requests a minute for {lasting:g}s"
        if self.keeper is None:
            return done
        try:
            await self.keeper.keep_throttle(KeptThrottle(agent, rpm, until), now)
        except StorageError as exc:
            log.error("throttle of agent %s not saved (a restart lifts it): %s", agent, exc)
            return f"{done}; not saved, a restart lifts it: {exc}"
        return done

    async def unthrottle(self, params: Mapping[str, str]) -> str:
        """``unthrottle_agent``: ``agent_id``.

        Raises:
            KeyError: no ``agent_id``.
        """
        agent = params["agent_id"]
        was = self.throttled.pop(agent, None) is not None
        done = f"agent {agent} no longer throttled" if was else f"agent {agent} was not throttled"
        if self.keeper is None:
            return done
        try:
            await self.keeper.drop_throttle(agent)
        except StorageError as exc:
            log.error("throttle of agent %s still saved (a restart puts it back): %s", agent, exc)
            return f"{done}; still saved, a restart puts it back until it lapses: {exc}"
        return done
