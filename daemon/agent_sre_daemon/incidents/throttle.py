"""Throttles put on agents by automatic responses (``throttle_agent``) or by hand
(``POST /v1/throttles``): a proxy stage in the ``admission`` slot that lets a throttled
agent's calls through at a set rate for a while, and answers the rest ``agent_throttled``
(429 with Retry-After, as the cost guard's own rate limits do).

Every throttle put on or lifted is logged with who did it (a rule of an incident, or an
operator) and published on the bus: ``agent_throttle`` from source ``incidents``, firing
when put on, resolved when lifted (severity info).

Each throttle is also written to a :class:`ThrottleKeeper` (the incidents engine's SQLite
file), so a restart or a crash does not free a runaway agent: :meth:`ThrottleStage.restore`
puts the throttles still in force back at start. Writes happen when a throttle is put on or
lifted, never per call; a lapsed throttle is dropped from memory by the next call of its
agent and from the file at the next start or write.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from agent_sre.cost.ratelimit import TokenBucket
from agent_sre.incidents.throttles import MAX_RPM, MIN_RPM, PutBy, ThrottleRequest
from agent_sre.numbers import MAX_DURATION, NumberError, checked_number, number_from_text
from agent_sre.signals import Severity, Signal, SignalState
from agent_sre_daemon.component import ACTION_CALLER
from agent_sre_daemon.errors import proxy_error
from agent_sre_daemon.incidents.store import KeptThrottle
from agent_sre_daemon.stores.errors import StorageError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from aiohttp import web

    from agent_sre.bounded import OnEvict
    from agent_sre_daemon.clock import Clock
    from agent_sre_daemon.proxy.call import Call
    from agent_sre_daemon.proxy.stage import StageSlot
    from agent_sre_daemon.signals import SignalBus

log = logging.getLogger("agent_sre.incidents")
MAX_THROTTLES = 10_000
"""Throttles held at once (one per agent id, which rules render from client-chosen labels);
past it the one that lapses soonest is lifted, and counted."""

SIGNAL_TYPE = "agent_throttle"
SIGNAL_SOURCE = "incidents"


class ThrottleKeeper(Protocol):
    """Where throttles outlive the process (:class:`~.store.IncidentStore`)."""

    async def keep_throttle(self, throttle: KeptThrottle, now: float) -> None:
        """Raises: StorageError."""
        ...

    async def drop_throttle(self, agent_id: str) -> None:
        """Raises: StorageError."""
        ...


@dataclass
class Held:
    """A throttle in force: its pace (a bucket of one call) and what is kept of it."""

    bucket: TokenBucket
    throttle: KeptThrottle


@dataclass(frozen=True)
class Outcome:
    """What putting on or lifting a throttle did.

    Attributes:
        throttle: the throttle put on, or the one lifted (None: there was none).
        unsaved: why the change could not be written to the keeper ("" when it was): a
            throttle put on holds until the next restart only; one lifted comes back at the
            next restart until it lapses.
    """

    throttle: KeptThrottle | None
    unsaved: str = ""


def _sane(throttle: KeptThrottle, now: float) -> bool:
    """The kept throttle's numbers are ones ``POST /v1/throttles`` would accept."""
    try:
        checked_number(throttle.requests_per_minute)
        checked_number(throttle.until)
    except NumberError:
        return False
    return (
        MIN_RPM <= throttle.requests_per_minute <= MAX_RPM and throttle.until - now <= MAX_DURATION
    )


class ThrottleStage:
    name = "throttle"
    slot: StageSlot = "admission"

    def __init__(
        self,
        clock: Clock,
        keeper: ThrottleKeeper | None = None,
        bus: SignalBus | None = None,
        on_evict: OnEvict | None = None,
    ) -> None:
        self.clock = clock
        self.on_evict = on_evict
        self.keeper = keeper
        """None: throttles live in memory only."""
        self.bus = bus
        """None: changes are logged, not published."""
        self.throttled: dict[str, Held] = {}
        """agent id -> the throttle in force"""

    # hot path: per proxied call
    async def on_request(self, call: Call) -> web.StreamResponse | None:
        if not self.throttled:
            return None
        agent = call.identity.agent_id
        held = self.throttled.get(agent)
        if held is None:
            return None
        now = self.clock.time()
        throttle = held.throttle
        if now >= throttle.until:
            del self.throttled[agent]
            return None
        wait = held.bucket.wait_for(1.0, now)
        if wait > 0:
            rpm = throttle.requests_per_minute
            by = "an operator" if throttle.by.operator else "a rule"
            message = f"agent {agent!r} is throttled to {rpm:g} requests a minute by {by}"
            call.fail("agent_throttled", message)
            return proxy_error(call.route.config.api, "agent_throttled", message, wait)
        held.bucket.take(1.0, now)
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
            if not _sane(throttle, now):  # kept by a version before the numbers gate
                log.warning("throttle of agent %s not restored: requests_per_minute %r, until "
                            "%r are not numbers a throttle takes", throttle.agent_id,
                            throttle.requests_per_minute, throttle.until)  # fmt: skip
                continue
            rate = throttle.requests_per_minute / 60.0
            bucket = TokenBucket(rate=rate, capacity=1.0, level=0.0, updated=now)
            self.throttled[throttle.agent_id] = Held(bucket, throttle)
            restored += 1
        return restored

    def in_force(self, now: float) -> list[KeptThrottle]:
        """Every throttle in force at ``now``, by agent id (lapsed ones are dropped)."""
        for agent in [a for a, held in self.throttled.items() if held.throttle.until <= now]:
            del self.throttled[agent]
        return [self.throttled[agent].throttle for agent in sorted(self.throttled)]

    async def put(self, agent: str, rpm: float, lasting: float, by: PutBy) -> Outcome:
        """Throttles ``agent`` to ``rpm`` requests a minute for ``lasting`` seconds (replacing
        a throttle it had), at once; logs it with who did it and publishes it. When it cannot
        be written to the keeper it holds in memory only, and the outcome and the log say so.
        """
        now = self.clock.time()
        throttle = KeptThrottle(agent, rpm, now + lasting, now, by)
        if agent not in self.throttled and len(self.throttled) >= MAX_THROTTLES:
            await self._make_room(now)
        # a burst of one: the agent gets its first call, then the set pace
        self.throttled[agent] = Held(TokenBucket(rate=rpm / 60.0, capacity=1.0), throttle)
        unsaved = ""
        if self.keeper is not None:
            try:
                await self.keeper.keep_throttle(throttle, now)
            except StorageError as exc:
                unsaved = str(exc)
                log.error("throttle of agent %s not saved (a restart lifts it): %s", agent, exc)
        log.info(
            "agent %s throttled to %g requests a minute for %gs by %s",
            agent, rpm, lasting, by.describe(),
        )  # fmt: skip
        self._publish(
            throttle,
            SignalState.FIRING,
            f"agent {agent} throttled to {rpm:g} requests a minute for {lasting:g}s "
            f"by {by.describe()}",
            by,
            unsaved,
            now,
        )
        return Outcome(throttle, unsaved)

    async def _make_room(self, now: float) -> None:
        """Forgets lapsed throttles; if none had, lifts the one that lapses soonest."""
        if len(self.in_force(now)) < MAX_THROTTLES:
            return
        soonest = min(self.throttled, key=lambda agent: self.throttled[agent].throttle.until)
        del self.throttled[soonest]
        if self.keeper is not None:
            try:
                await self.keeper.drop_throttle(soonest)
            except StorageError as exc:
                log.error("throttle of agent %s lifted but still saved: %s", soonest, exc)
        log.warning("throttle of agent %s lifted: %d throttles held", soonest, MAX_THROTTLES)
        if self.on_evict is not None:
            self.on_evict("throttles", soonest)

    async def lift(self, agent: str, by: PutBy) -> Outcome:
        """Lifts the throttle of ``agent`` (none in force: ``Outcome(None)``, and nothing is
        published); logs it with who did it and publishes it."""
        now = self.clock.time()
        held = self.throttled.pop(agent, None)
        lifted = held.throttle if held is not None and held.throttle.until > now else None
        unsaved = ""
        if self.keeper is not None:
            try:
                await self.keeper.drop_throttle(agent)
            except StorageError as exc:
                unsaved = str(exc)
                log.error(
                    "throttle of agent %s still saved (a restart puts it back): %s", agent, exc
                )
        if lifted is None:
            return Outcome(None, unsaved)
        log.info("throttle of agent %s lifted by %s", agent, by.describe())
        self._publish(
            lifted,
            SignalState.RESOLVED,
            f"throttle of agent {agent} lifted by {by.describe()}",
            by,
            unsaved,
            now,
        )
        return Outcome(lifted, unsaved)

    def _publish(
        self,
        throttle: KeptThrottle,
        state: SignalState,
        message: str,
        by: PutBy,
        unsaved: str,
        now: float,
    ) -> None:
        if self.bus is None:
            return
        self.bus.publish(
            Signal(
                type=SIGNAL_TYPE,
                source=SIGNAL_SOURCE,
                severity=Severity.INFO,
                at=now,
                message=message,
                labels={"agent_id": throttle.agent_id},
                state=state,
                value=throttle.requests_per_minute,
                details={
                    "requests_per_minute": throttle.requests_per_minute,
                    "since": throttle.since,
                    "until": throttle.until,
                    "by": by.describe(),
                    **by.to_dict(),
                    "saved": not unsaved,
                },
            )
        )

    # -- the actions ----------------------------------------------------------------------

    async def throttle(self, params: Mapping[str, str]) -> str:
        """``throttle_agent``: ``agent_id``, ``requests_per_minute`` (6), ``for`` (10m).

        The throttle holds at once; when it cannot be written to the keeper it holds in
        memory only, and the answer (the incident's timeline) and the log say so.

        Raises:
            KeyError, ValueError: a parameter is missing or not a number / duration.
        """
        given: dict[str, Any] = {"agent_id": params["agent_id"]}
        if params.get("requests_per_minute"):
            given["requests_per_minute"] = number_from_text(str(params["requests_per_minute"]))
        if params.get("for"):
            try:
                given["for"] = number_from_text(str(params["for"]))
            except NumberError:
                given["for"] = str(params["for"])
        wanted = ThrottleRequest.from_json(given)  # the gate of POST /v1/throttles too
        agent, rpm, lasting = wanted.agent_id, wanted.requests_per_minute, wanted.lasting
        outcome = await self.put(agent, rpm, lasting, _caller())
        done = f"agent {agent} throttled to {rpm:g} requests a minute for {lasting:g}s"
        if outcome.unsaved:
            return f"{done}; not saved, a restart lifts it: {outcome.unsaved}"
        return done

    async def unthrottle(self, params: Mapping[str, str]) -> str:
        """``unthrottle_agent``: ``agent_id``.

        Raises:
            KeyError: no ``agent_id``.
        """
        agent = params["agent_id"]
        outcome = await self.lift(agent, _caller())
        was = outcome.throttle is not None
        done = f"agent {agent} no longer throttled" if was else f"agent {agent} was not throttled"
        if outcome.unsaved:
            return f"{done}; still saved, a restart puts it back until it lapses: {outcome.unsaved}"
        return done


def _caller() -> PutBy:
    """Who runs the action: the rule and incident the incidents engine set, else unknown."""
    caller = ACTION_CALLER.get()
    if caller is None:
        return PutBy()
    return PutBy(rule=caller.rule, incident=caller.incident)
