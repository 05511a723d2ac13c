"""One proxied call in flight, and the chain of stages it passes through.

A :class:`Call` carries what every stage may read and write (public, typed attributes); a
:class:`Chain` runs the stages (:mod:`agent_sre_daemon.proxy.stage`): ``on_request`` in
slot order until one answers, then ``on_response`` in reverse for every stage entered. The
way back starts at once in the handler's own step; if a stage on it waits (a ledger write),
the rest runs in a task of its own that a cancelled handler or a departed client does not
interrupt, so whatever a stage took on the way in (a budget reservation) is given back.
What only observes a call (its span, its capture) is put off with :class:`AfterAnswer` to
just after the answer is written.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict

from agent_sre.cost.budgets import CallIdentity
from agent_sre.gateway.outcome import decided_by
from agent_sre.gateway.plan import ResponseFacts
from agent_sre_daemon.proxy.stage import ordered

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Generator

    from aiohttp import web

    from agent_sre.gateway.identity import TraceContext
    from agent_sre.gateway.outcome import DecidedBy
    from agent_sre.gateway.plan import CallPlan
    from agent_sre_daemon.proxy.gate import Ticket
    from agent_sre_daemon.proxy.routes import Route
    from agent_sre_daemon.proxy.spans import CallRecord
    from agent_sre_daemon.proxy.stage import Stage

    ChunkTap = Callable[[bytes], Awaitable[bytes]]
    """Sees (and may change, hold back or delay) each chunk on its way to the client."""

log = logging.getLogger("agent_sre.proxy")


class Call:
    """The state of one call, shared by its stages.

    Set before the chain: ``request``, ``route``, ``path`` (after the route prefix),
    ``query``, ``plan`` (the request as its provider reads it), ``started`` (the clock's
    monotonic time), ``record`` (the span being filled in), ``body`` (the request body as
    the agent sent it: stages that change what goes upstream, such as the provider asking
    for streamed usage or a rollout naming its candidate model, change ``plan.body`` only).

    Attributes:
        identity: who makes the call (identity stage; admission fills the team).
        trace: the caller's trace context and our span id (identity stage).
        ticket: the admission and the reservation it holds (admission stage).
        refused: the admission stage refused the call (budget, block, rate limit).
        upstream_url: where the call goes (routing stage; a rollout stage may change it).
        upstream_headers: the headers it goes with (routing stage).
        status: the HTTP status answered (0 until known).
        reached_upstream: the provider received the call.
        decided_by: who gave the answer (set once, by the chain, from the slot of the stage
            that answered and the chaos fault on the call); None until a stage answers.
            Whatever judges an upstream's health counts only ``DecidedBy.UPSTREAM``.
        fault: the chaos fault injected into the call (its type), None when none was.
        streamed: response headers went to the client before the body was complete.
        facts: what the response told (usage, model, output size).
        ttft: seconds from the request to the first streamed chunk sent, for streams.
        added: seconds the proxy itself added (before forwarding, after the answer).
        cost: USD the call cost (settle stage); None when its model has no price.
        response: the response the client got, once a stage answered.
        response_headers: headers a stage adds to the response the ``forward`` stage builds
            (e.g. ``x-agent-sre-chaos`` on a call a fault was injected into).
    """

    def __init__(
        self,
        request: web.Request,
        route: Route,
        path: str,
        query: str,
        plan: CallPlan,
        started: float,
        record: CallRecord,
        body: bytes,
    ) -> None:
        self.request = request
        self.body = body
        self.route = route
        self.path = path
        self.query = query
        self.plan = plan
        self.started = started
        self.record = record
        self.identity = _ANONYMOUS
        self.trace: TraceContext | None = None
        self.ticket: Ticket | None = None
        self.refused = False
        self.upstream_url = ""
        self.upstream_headers: CIMultiDict[str] = CIMultiDict()
        self.status = 0
        self.reached_upstream = False
        self.decided_by: DecidedBy | None = None
        self.fault: str | None = None
        self.streamed = False
        self.facts = ResponseFacts()
        self.ttft: float | None = None
        self.added = 0.0
        self.cost: float | None = None
        self.response: web.StreamResponse | None = None
        self.taps: list[ChunkTap] = []
        self.hidden_headers: set[str] = set()
        """Request headers (lower case) that must not go upstream (an agent key)."""
        self.response_headers: dict[str, str] = {}

    def fail(self, kind: str, message: str) -> None:
        """Marks the call failed: ``error.type`` ``kind`` on its span."""
        self.record.error = kind
        self.record.error_message = message

    def add_chunk_tap(self, tap: ChunkTap) -> None:
        """Passes every chunk of the response body through ``tap`` on its way to the client
        (taps run in the order added; a whole body is one chunk). A tap may return the chunk,
        another one, or ``b""`` to hold it back, and may wait (a delay) before returning."""
        self.taps.append(tap)

    async def tapped(self, chunk: bytes) -> bytes:
        """``chunk`` after every tap."""
        for tap in self.taps:
            chunk = await tap(chunk)
            if not chunk:
                break
        return chunk


_ANONYMOUS = CallIdentity()


class Chain:
    """The stages every call passes through, in slot order."""

    def __init__(self, stages: list[Stage]) -> None:
        self.stages = ordered(stages)
        self.unwinding: set[asyncio.Task[None]] = set()
        """Ways back still running (the proxy's stop waits for them)."""

    # hot path: per proxied call
    async def run(self, call: Call) -> web.StreamResponse:
        entered: list[Stage] = []
        try:
            for stage in self.stages:
                entered.append(stage)
                response = await stage.on_request(call)
                if response is not None:
                    call.status = response.status
                    call.response = response
                    call.decided_by = decided_by(stage.slot, call.fault)
                    return response
            raise RuntimeError("no stage answered the call")
        finally:
            if call.decided_by is None and entered:
                # the stage at work when the call ended (a cut stream, a client gone)
                call.decided_by = decided_by(entered[-1].slot, call.fault)
            # The way back runs at once, in this step of the handler's task (nothing can
            # cancel it there); only if a stage waits (a ledger write) does the rest go on
            # in a task of its own that a cancelled handler does not interrupt: a
            # reservation must never leak. No task, no extra turn of the loop otherwise.
            back = self._back(call, entered)
            try:
                waiting_on = back.send(None)
            except StopIteration:
                pass
            else:
                task = asyncio.ensure_future(_rest_of(back, waiting_on))
                self.unwinding.add(task)
                task.add_done_callback(self.unwinding.discard)
                await asyncio.shield(task)

    async def _back(self, call: Call, entered: list[Stage]) -> None:
        try:
            for stage in reversed(entered):
                try:
                    await stage.on_response(call)
                except Exception:
                    log.exception("proxy stage %s failed on the way back", stage.name)
        finally:
            # A tap refers back to the call (a stage's bound method or a closure over it):
            # dropped once the answer is done, the call's objects (request, response, span
            # record, plan) go with its last reference instead of waiting, as a cycle, for
            # the garbage collector (which then walked every call a capture kept).
            call.taps.clear()


async def _rest_of(coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
    """Runs ``coro`` on from where it stopped, waiting on ``waiting_on`` (what its last
    step yielded: a future, or None for a bare yield)."""
    await _Resumed(coro, waiting_on)


class _Resumed:
    """Drives a coroutine that has already taken its first step, as its task would."""

    __slots__ = ("_coro", "_waiting_on")

    def __init__(self, coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        self._coro = coro
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any, None, None]:
        coro, waiting_on = self._coro, self._waiting_on
        while True:
            try:
                value = yield waiting_on
            except BaseException as exc:  # delivered into the coroutine, as a task would
                try:
                    waiting_on = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    waiting_on = coro.send(value)
                except StopIteration:
                    return


class AfterAnswer:
    """Work a call leaves for after its answer is on its way (its span, its capture): put
    off to the next turn of the event loop and run there in one batch, so the client does
    not wait on it. Jobs run in the order added; one that fails is logged and the rest run.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._jobs: list[tuple[Callable[..., object], tuple[Any, ...]]] = []
        self._handle: asyncio.Handle | None = None

    # hot path: per proxied call
    def add(self, job: Callable[..., object], *args: Any) -> None:
        self._jobs.append((job, args))
        if self._handle is None:
            try:
                self._handle = asyncio.get_running_loop().call_soon(self.run)
            except RuntimeError:  # no loop running (a synchronous caller): now
                self.run()

    def run(self) -> None:
        """Runs every job waiting (also called on stop, so none is left behind)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        jobs, self._jobs = self._jobs, []
        for job, args in jobs:
            try:
                job(*args)
            except Exception:
                log.exception("%s after a proxied call's answer failed", self.what)

    def __len__(self) -> int:
        return len(self._jobs)
