"""The trace buffer's signals: its writer thread reports each pass here, and what the
operator must hear (``replay_store_error``, ``replay_evicted_interesting``) is published on
the node's signal bus from the event loop (the bus is the loop's alone)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from agent_sre.replay.signals import StoreHealth, evicted_interesting

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from agent_sre.signals import Signal
    from agent_sre_daemon.replay.store import TraceStore
    from agent_sre_daemon.signals import SignalBus

log = logging.getLogger("agent_sre.replay")


class StoreReporter:
    """The buffer's ``report``: called on the writer thread after each pass.

    Args:
        loop: the node's event loop (signals are handed to it).
        bus: the node's signal bus.
        store: the buffer's store (its count of interesting traces evicted is read).
        now: the node clock's ``time``.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        bus: SignalBus,
        store: TraceStore,
        now: Callable[[], float],
    ) -> None:
        self.loop = loop
        self.bus = bus
        self.store = store
        self.now = now
        self.health = StoreHealth()
        self._evicted_seen = store.evicted_interesting

    def __call__(self, error: Exception | None, wrote: bool) -> None:
        now = self.now()
        if error is not None:
            self._publish(self.health.failed(f"{type(error).__name__}: {error}", now))
        elif wrote:
            self._publish(self.health.wrote(now))
        evicted = self.store.evicted_interesting - self._evicted_seen
        if evicted > 0:
            self._evicted_seen += evicted
            self._publish(evicted_interesting(evicted, self.store.limits.max_bytes, now))

    def _publish(self, signal: Signal | None) -> None:
        if signal is None:
            return
        try:
            self.loop.call_soon_threadsafe(self.bus.publish, signal)
        except RuntimeError:  # the loop is closed: the node has stopped
            log.warning("signal %s not published (the node has stopped)", signal.type)
