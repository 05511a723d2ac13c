"""Upstream forwarding as one component: the durable queue in ``state_dir`` and the OTLP
forwarder that drains it. Off (nothing queued) when ``exporters.otlp.endpoint`` is empty."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from prometheus_client import Gauge

from agent_sre_daemon.component import Component, Prepared, ReloadError
from agent_sre_daemon.exporters.otlp import OtlpForwarder
from agent_sre_daemon.stores.queue import DurableQueue

if TYPE_CHECKING:
    from agent_sre.config import Config, OtlpExporterConfig
    from agent_sre_daemon.component import NodeContext

log = logging.getLogger("agent_sre.exporter")

MIB = 1024 * 1024
QUEUE_FILE = "queue.db"


class Forwarding(Component):
    """Owns the queue and the forwarder; swaps both on a reload that changes them."""

    name: ClassVar[str] = "forwarding"
    title: ClassVar[str] = "Durable queue"

    def __init__(self, context: NodeContext) -> None:
        self.context = context
        self.queue: DurableQueue | None = None
        self.forwarder: OtlpForwarder | None = None
        gauges = self.register_metrics(context.registry)
        gauges["size"].set_function(lambda: self.queue.size_bytes if self.queue else 0)
        gauges["requests"].set_function(lambda: len(self.queue) if self.queue else 0)
        gauges["oldest"].set_function(self._oldest_age)

    @classmethod
    def register_metrics(cls, registry: Any) -> dict[str, Gauge]:
        return {
            "size": Gauge(
                "agent_sre_queue_size_bytes",
                "Bytes of requests waiting in the durable queue.",
                registry=registry,
            ),
            "requests": Gauge(
                "agent_sre_queue_requests",
                "Requests waiting in the durable queue.",
                registry=registry,
            ),
            "oldest": Gauge(
                "agent_sre_queue_oldest_age_seconds",
                "Age of the oldest request in the durable queue (0 when empty).",
                registry=registry,
            ),
        }

    # -- component ----------------------------------------------------------------------

    async def start(self) -> dict[str, str]:
        otlp = self.context.config.exporters.otlp
        if not otlp.endpoint:
            log.info("exporters.otlp.endpoint is empty: nothing is forwarded or queued")
            return {}
        queue = self._open_queue(otlp, Path(self.context.config.state_dir))
        if len(queue):
            log.info(
                "queue holds %d requests (%d bytes) from before; sending them first",
                len(queue),
                queue.size_bytes,
            )
        self._swap(queue, self._forwarder(otlp, queue))
        return {}

    async def stop(self, deadline: float) -> None:
        """Sends what it can until the deadline (at most ``exporters.otlp.shutdown_timeout``);
        what is left stays on disk for the next start."""
        self.context.pipeline.accepting = False
        remaining = deadline - self.context.clock.monotonic()
        flush = min(remaining, self.context.config.exporters.otlp.shutdown_timeout)
        await self._close(flush)

    async def prepare_reload(self, new: Config) -> Prepared:
        old = self.context.config
        if new.exporters.otlp == old.exporters.otlp and new.state_dir == old.state_dir:
            return Prepared()
        otlp = new.exporters.otlp
        if not otlp.endpoint:

            async def turn_off() -> None:
                await self._close(0.0)

            return Prepared(commit=turn_off)
        same_file = new.state_dir == old.state_dir and self.queue is not None
        queue = self.queue if same_file and self.queue is not None else None
        try:
            if queue is None:
                queue = self._open_queue(otlp, Path(new.state_dir))
            forwarder = self._forwarder(otlp, queue)
        except (OSError, ValueError) as exc:
            if queue is not None and queue is not self.queue:
                queue.close()
            raise ReloadError(f"exporters.otlp: {exc}") from exc
        prepared_queue = queue

        async def commit() -> None:
            if prepared_queue is not self.queue:
                await self._close(0.0)
            elif self.forwarder is not None:
                await self.forwarder.stop()
            self._swap(prepared_queue, forwarder)

        async def abort() -> None:
            if prepared_queue is not self.queue:
                prepared_queue.close()

        return Prepared(commit=commit, abort=abort)

    def status(self) -> dict[str, Any]:
        queue = self.queue
        return {
            "upstream": self.context.config.exporters.otlp.endpoint or None,
            "queue": {
                "requests": len(queue) if queue is not None else 0,
                "bytes": queue.size_bytes if queue is not None else 0,
                "oldest_age_seconds": round(self._oldest_age(), 3),
            },
        }

    # -- parts --------------------------------------------------------------------------

    def _open_queue(self, otlp: OtlpExporterConfig, state_dir: Path) -> DurableQueue:
        return DurableQueue(
            state_dir / QUEUE_FILE,
            int(otlp.queue.max_size_mib * MIB),
            fsync=otlp.queue.fsync,
            clock=self.context.clock,
        )

    def _forwarder(self, otlp: OtlpExporterConfig, queue: DurableQueue) -> OtlpForwarder:
        return OtlpForwarder(
            otlp,
            queue,
            self.context.pipeline.metrics,
            clock=self.context.clock,
            on_signal=self.context.bus.publish,
        )

    def _swap(self, queue: DurableQueue, forwarder: OtlpForwarder) -> None:
        self.queue, self.forwarder = queue, forwarder
        pipeline = self.context.pipeline
        pipeline.queue = queue
        pipeline.on_queued = forwarder.wake
        forwarder.start()

    async def _close(self, flush_timeout: float) -> None:
        if self.forwarder is not None:
            if flush_timeout > 0 and not await self.forwarder.drain(flush_timeout):
                log.warning(
                    "upstream did not take everything within %.1fs; %d requests stay queued",
                    flush_timeout,
                    len(self.queue or ()),
                )
            await self.forwarder.stop()
            self.forwarder = None
        pipeline = self.context.pipeline
        pipeline.queue = None
        pipeline.on_queued = lambda: None
        if self.queue is not None:
            self.queue.close()
            self.queue = None

    def _oldest_age(self) -> float:
        oldest = self.queue.oldest_created() if self.queue is not None else None
        return max(0.0, self.context.clock.time() - oldest) if oldest else 0.0
