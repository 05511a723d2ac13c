"""The signal bus: every engine publishes :class:`~agent_sre.signals.Signal` here; incidents,
notifications and the admin API subscribe.

Publishing never waits: each subscriber has a bounded queue, and what a slow subscriber
cannot take is dropped for it alone and counted. The bus keeps the most recent signals for
``GET /v1/signals``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from aiohttp import web
from prometheus_client import Counter

from agent_sre.replay.redaction import TEXT_MARK, Redactor, credential_name
from agent_sre.signals import Severity, Signal
from agent_sre_daemon.admin.inputs import query_number
from agent_sre_daemon.component import Component

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger("agent_sre.signals")

RECENT_SIGNALS = 1000
SUBSCRIBER_QUEUE = 1000
_LOG_LEVEL = {
    Severity.INFO: logging.INFO,
    Severity.WARNING: logging.WARNING,
    Severity.CRITICAL: logging.ERROR,
}


class SignalMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.published = Counter(
            "agent_sre_signals_total",
            "Signals published on the bus, by source and type.",
            ["source", "type"],
            registry=registry,
        )
        self.missed = Counter(
            "agent_sre_signal_subscriber_missed_total",
            "Signals a slow subscriber missed because its queue was full.",
            ["subscriber"],
            registry=registry,
        )


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class Subscription:
    """A subscriber's bounded, ordered view of the bus.

    At most ``maxsize`` signals wait. When it is full, a new signal pushes out the oldest
    waiting signal quieter than itself (a critical one a warning or info, a warning an info),
    or is itself dropped when none is quieter: a flood of warnings about client-chosen ids
    never costs a critical signal. Every drop is counted (``missed``). Signals come out in
    publication order.
    """

    def __init__(self, bus: SignalBus, name: str, maxsize: int) -> None:
        self.name = name
        self.maxsize = maxsize
        self.missed = 0
        self._bus = bus
        # one queue per severity (quietest first), each of (publication number, signal)
        self._queues: tuple[deque[tuple[int, Signal]], ...] = (deque(), deque(), deque())
        self._size = 0
        self._number = 0
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return self._size

    def offer(self, signal: Signal) -> bool:
        """Queues ``signal``; False when a signal (it, or a quieter one) was dropped."""
        rank = _RANK[signal.severity]
        kept = True
        if self._size >= self.maxsize:
            quieter = next((q for q in self._queues[:rank] if q), None)
            self.missed += 1
            if quieter is None:
                return False
            quieter.popleft()
            self._size -= 1
            kept = False
        self._number += 1
        self._queues[rank].append((self._number, signal))
        self._size += 1
        self._ready.set()
        return kept

    def get_nowait(self) -> Signal | None:
        if not self._size:
            return None
        first: deque[tuple[int, Signal]] | None = None
        for queue in self._queues:
            if queue and (first is None or queue[0][0] < first[0][0]):
                first = queue
        assert first is not None
        signal = first.popleft()[1]
        self._size -= 1
        if not self._size:
            self._ready.clear()
        return signal

    async def get(self) -> Signal:
        """The next signal, in publication order (waits while there is none)."""
        while True:
            signal = self.get_nowait()
            if signal is not None:
                return signal
            await self._ready.wait()

    def close(self) -> None:
        self._bus.unsubscribe(self)


_REDACTOR = Redactor()


def redacted_signal(signal: Signal, redactor: Redactor) -> Signal:
    """``signal`` with every credential in its message, labels and details redacted (itself
    when it holds none: one scan decides)."""
    details = json.dumps(signal.details, default=str) if signal.details else ""
    texts = "\n".join((signal.message, *signal.labels.values(), details))
    if not redactor.finds(texts.encode("utf-8", "surrogatepass")):
        return signal
    text = redactor.redact_text
    return dataclasses.replace(
        signal,
        message=text(signal.message),
        labels={key: text(value) for key, value in signal.labels.items()},
        details=_redacted_details(signal.details, redactor),
    )


def _redacted_details(value: Any, redactor: Redactor) -> Any:
    """Each string of an engine's details redacted, the shape kept (details are small and
    made by the daemon: a plain walk)."""
    if isinstance(value, str):
        return redactor.redact_text(value)
    if isinstance(value, Mapping):
        return {
            key: TEXT_MARK
            if isinstance(key, str) and credential_name(key) and isinstance(item, str)
            else _redacted_details(item, redactor)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redacted_details(item, redactor) for item in value]
    return value


class SignalBus(Component):
    """Carries signals from publishers to subscribers; keeps the recent ones."""

    name: ClassVar[str] = "signals"
    title: ClassVar[str] = "Signals"

    def __init__(self, registry: CollectorRegistry, recent: int = RECENT_SIGNALS) -> None:
        self.metrics = self.register_metrics(registry)
        self._keep = recent
        # Kept per source so a flood from one engine cannot push another's out of view.
        self._recent: dict[str, deque[tuple[int, Signal]]] = {}
        self._published = 0
        self._subscribers: list[Subscription] = []

    @classmethod
    def register_metrics(cls, registry: CollectorRegistry) -> SignalMetrics:
        return SignalMetrics(registry)

    def publish(self, signal: Signal) -> None:
        """Hands ``signal`` to every subscriber without waiting (call from the loop's thread;
        from another thread use ``loop.call_soon_threadsafe(bus.publish, signal)``). A
        credential in it (a model name or a path a client chose, echoed in a message) is
        redacted first: signals are listed, logged, kept in incidents and sent out."""
        signal = redacted_signal(signal, _REDACTOR)
        self._published += 1
        kept = self._recent.get(signal.source)
        if kept is None:
            kept = self._recent[signal.source] = deque(maxlen=self._keep)
        kept.append((self._published, signal))
        self.metrics.published.labels(signal.source, signal.type).inc()
        log.log(
            _LOG_LEVEL[signal.severity],
            "signal %s/%s %s: %s",
            signal.source,
            signal.type,
            signal.state.value,
            signal.message,
        )
        for subscriber in self._subscribers:
            if not subscriber.offer(signal):
                self.metrics.missed.labels(subscriber.name).inc()

    def subscribe(self, name: str, maxsize: int = SUBSCRIBER_QUEUE) -> Subscription:
        subscription = Subscription(self, name, maxsize)
        self._subscribers.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscribers:
            self._subscribers.remove(subscription)

    def recent(
        self,
        since: float | None = None,
        type_: str | None = None,
        source: str | None = None,
        limit: int = RECENT_SIGNALS,
    ) -> list[Signal]:
        """Recent signals (the last ``RECENT_SIGNALS`` of each source), oldest first,
        filtered; at most ``limit`` (the newest ones)."""
        sources = [source] if source is not None else list(self._recent)
        found = sorted(
            (seq, s)
            for name in sources
            for seq, s in self._recent.get(name, ())
            if (since is None or s.at >= since) and (type_ is None or s.type == type_)
        )
        return [s for _, s in found[-limit:]] if limit > 0 else []

    # -- component ----------------------------------------------------------------------

    def admin_routes(self) -> list[web.RouteDef]:
        return [web.get("/v1/signals", self._list)]

    def status(self) -> dict[str, Any]:
        kept = sum(len(signals) for signals in self._recent.values())
        return {"signals": {"recent": kept, "subscribers": len(self._subscribers)}}

    async def _list(self, request: web.Request) -> web.Response:
        query = request.query
        since = query_number(query, "since", None, minimum=0, maximum=1e10)
        limit = query_number(query, "limit", RECENT_SIGNALS, minimum=0, maximum=100_000,
                             integer=True)  # fmt: skip
        found = self.recent(since, query.get("type"), query.get("source"), limit)
        return web.json_response({"signals": [s.to_dict() for s in found]})
