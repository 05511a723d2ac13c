"""Forwards queued OTLP requests upstream over gRPC, retrying until upstream has them.

A request leaves the durable queue only when upstream acknowledged it, or when upstream
refused it for good (a non-retryable status), which is counted and logged as a drop. Retries
use exponential backoff with jitter (tenacity) and honour the upstream's RetryInfo hint.

The senders survive the queue's storage errors (a full disk): they wait and try again, and
forwarding resumes by itself when the disk does. Upstream trouble is published as signals:
``export_failed`` fires at the first failed attempt and resolves at the next success (not one
per retry); ``items_dropped`` fires for every drop.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    stop_never,
    wait_exponential,
    wait_random,
)

from agent_sre.signals import Severity, Signal, SignalState
from agent_sre_daemon.clock import SYSTEM_CLOCK
from agent_sre_daemon.component import cancel_tasks
from agent_sre_daemon.errors import RETRYABLE_GRPC_CODES
from agent_sre_daemon.stores import ballast
from agent_sre_daemon.stores.errors import StorageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from tenacity.stop import stop_base

    from agent_sre.config import OtlpExporterConfig
    from agent_sre_daemon.clock import Clock
    from agent_sre_daemon.metrics import PipelineMetrics
    from agent_sre_daemon.stores.queue import DurableQueue, QueuedRequest

log = logging.getLogger("agent_sre.exporter.otlp")

STORAGE_RETRY_INITIAL = 0.5
STORAGE_RETRY_MAX = 10.0
"""Backoff of a sender whose queue read or delete failed (the disk recovers on its own)."""

_METHODS = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}


@dataclass(frozen=True)
class Target:
    """Where and how to connect, from ``exporters.otlp.endpoint``."""

    address: str
    tls: bool

    @classmethod
    def parse(cls, endpoint: str) -> Target:
        if endpoint.startswith("https://"):
            return cls(endpoint.removeprefix("https://").rstrip("/"), tls=True)
        return cls(endpoint.removeprefix("http://").rstrip("/"), tls=False)


class UpstreamError(Exception):
    """One failed send; ``retryable`` per the OTLP table, ``retry_after`` from RetryInfo."""

    def __init__(self, code: grpc.StatusCode, details: str, retry_after: float | None) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.retry_after = retry_after
        self.retryable = code in RETRYABLE_GRPC_CODES or (
            code is grpc.StatusCode.RESOURCE_EXHAUSTED and retry_after is not None
        )


def retry_after_from(trailers: Any) -> float | None:
    """Reads ``google.rpc.RetryInfo`` from a ``grpc-status-details-bin`` trailer, if any."""
    for key, value in trailers or ():
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            info = error_details_pb2.RetryInfo()
            if detail.Unpack(info):
                return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
    return None


class OtlpForwarder:
    """Drains a :class:`DurableQueue` to an upstream OTLP/gRPC endpoint.

    Args:
        config: the ``exporters.otlp`` section (endpoint must be set).
        queue: the durable queue the receivers fill.
        metrics: exporter counters.
        clock: the node's clock (signal times, the drain deadline).
        on_signal: where ``export_failed`` and ``items_dropped`` go (the signal bus).
    """

    def __init__(
        self,
        config: OtlpExporterConfig,
        queue: DurableQueue,
        metrics: PipelineMetrics,
        *,
        clock: Clock = SYSTEM_CLOCK,
        on_signal: Callable[[Signal], None] | None = None,
    ) -> None:
        self.config = config
        self.queue = queue
        self.metrics = metrics
        self.clock = clock
        self.on_signal = on_signal
        self.failing = False
        """Whether the last attempt upstream failed (``export_failed`` is firing)."""
        self.target = Target.parse(config.endpoint)
        # read now, not when started: a reload that cannot read it is refused while preparing
        self._roots = (
            Path(config.ca_file).read_bytes() if self.target.tls and config.ca_file else None
        )
        self._wakeup = asyncio.Event()
        self._draining = False
        self._workers: list[asyncio.Task[None]] = []
        self._channel: grpc.aio.Channel | None = None
        self._calls: dict[str, grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = {}
        self._metadata = tuple((k.lower(), v) for k, v in config.headers.items())
        self._compression = (
            grpc.Compression.Gzip
            if config.compression == "gzip"
            else grpc.Compression.NoCompression
        )

    def start(self) -> None:
        """Opens the channel and starts ``max_in_flight`` senders."""
        if self.target.tls:
            self._channel = grpc.aio.secure_channel(
                self.target.address, grpc.ssl_channel_credentials(root_certificates=self._roots)
            )
        else:
            self._channel = grpc.aio.insecure_channel(self.target.address)
        self._calls = {
            signal: self._channel.unary_unary(method, None, None)
            for signal, method in _METHODS.items()
        }
        self._workers = [
            asyncio.create_task(self._run(), name=f"otlp-sender-{n}")
            for n in range(self.config.max_in_flight)
        ]

    def wake(self) -> None:
        """Tells the senders there is something new in the queue."""
        self._wakeup.set()

    async def drain(self, timeout: float) -> bool:
        """Waits until the queue is empty or ``timeout`` passes; True when empty."""
        self._draining = True
        deadline = self.clock.monotonic() + timeout
        while len(self.queue) and self.clock.monotonic() < deadline:
            self.wake()
            await asyncio.sleep(0.05)
        return not len(self.queue)

    async def stop(self) -> None:
        """Cancels the senders (whatever is unsent stays on disk) and closes the channel."""
        await cancel_tasks(*self._workers)
        self._workers = []
        if self._channel is not None:
            await self._channel.close(None)
            self._channel = None

    async def _run(self) -> None:
        batch_bytes = int(self.config.batch.max_size_mib * 1024 * 1024)
        pause = STORAGE_RETRY_INITIAL
        while True:
            self._wakeup.clear()
            try:
                batch = await self.queue.lease_batch_async(batch_bytes)
            except StorageError as exc:
                log.error("cannot read the queue (retrying in %.1fs): %s", pause, exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, STORAGE_RETRY_MAX)
                continue
            pause = STORAGE_RETRY_INITIAL
            if not batch:
                await self._wakeup.wait()
                if self.config.batch.timeout > 0 and not self._draining:
                    # Let a batch build up: one upstream call for many client requests.
                    await asyncio.sleep(self.config.batch.timeout)
                continue
            # Another sender may be idle while this one works: pass the wakeup on.
            self._wakeup.set()
            try:
                await self._deliver(batch)
            except Exception:  # a sender never dies: the batch goes back and is sent later
                log.exception("sending %d queued requests failed; retrying", len(batch))
                self.queue.release(batch)
                await asyncio.sleep(STORAGE_RETRY_MAX)

    async def _deliver(self, batch: list[QueuedRequest]) -> None:
        """Sends one batch until upstream has it; on a permanent refusal of a batch of
        several requests, each is sent alone so one bad request cannot sink the rest."""
        try:
            await self._send_with_retries(batch)
        except UpstreamError as exc:
            if len(batch) > 1 and not exc.retryable:
                for request in batch:
                    await self._deliver([request])
                return
            reason = "retries_exhausted" if exc.retryable else f"upstream_{exc.code.name.lower()}"
            items = sum(request.items for request in batch)
            signal = batch[0].signal
            self.metrics.dropped_items.labels(signal, reason).inc(items)
            log.error(
                "dropped %d %s items (requests %s) after upstream refused them: %s",
                items,
                signal,
                ",".join(str(request.id) for request in batch),
                exc,
            )
            self._publish(
                "items_dropped",
                Severity.WARNING,
                f"dropped {items} {signal} items: upstream {self.target.address} "
                f"{'kept failing past retry.max_elapsed' if exc.retryable else 'refused them'}"
                f" ({exc})",
                {"signal": signal, "reason": reason},
                value=float(items),
            )
        await self._ack(batch)

    async def _ack(self, batch: list[QueuedRequest]) -> None:
        """Deletes a finished batch; while the disk refuses, waits and tries again (the batch
        stays leased meanwhile, so it is not sent twice)."""
        pause = STORAGE_RETRY_INITIAL
        while True:
            try:
                await self.queue.ack_async(batch)
                return
            except StorageError as exc:
                if ballast.is_full(exc) and await asyncio.to_thread(
                    ballast.release, "the upstream queue cannot delete sent requests"
                ):
                    continue  # at once: the room it needs is back
                log.error("cannot delete sent requests (retrying in %.1fs): %s", pause, exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, STORAGE_RETRY_MAX)

    def _publish(
        self,
        type_: str,
        severity: Severity,
        message: str,
        labels: dict[str, str],
        *,
        state: SignalState = SignalState.FIRING,
        value: float | None = None,
    ) -> None:
        if self.on_signal is None:
            return
        signal = Signal(
            type=type_,
            source="exporter",
            severity=severity,
            at=self.clock.time(),
            message=message,
            labels={"upstream": self.target.address, **labels},
            state=state,
            value=value,
        )
        try:
            self.on_signal(signal)
        except Exception:  # a subscriber's bug must not stop forwarding
            log.exception("publishing signal %s failed", type_)

    def _upstream_failed(self, error: UpstreamError) -> None:
        if self.failing:
            return
        self.failing = True
        self._publish(
            "export_failed",
            Severity.WARNING,
            f"upstream {self.target.address} is failing: {error}; requests wait in the queue",
            {},
        )

    def _upstream_ok(self) -> None:
        if not self.failing:
            return
        self.failing = False
        self._publish(
            "export_failed",
            Severity.INFO,
            f"upstream {self.target.address} accepts requests again",
            {},
            state=SignalState.RESOLVED,
        )

    async def _send_with_retries(self, batch: list[QueuedRequest]) -> None:
        # Serialized OTLP requests concatenate into one request holding all their items.
        body = batch[0].body if len(batch) == 1 else b"".join(request.body for request in batch)
        # the first attempt without the retry machinery (about 60 us a batch); a retryable
        # failure hands over to tenacity as its own first attempt's outcome, so the waits
        # and the stop are what they would have been from the start
        started = self.clock.monotonic()
        try:
            await self._send(batch, body)
            return
        except UpstreamError as exc:
            if not exc.retryable:
                raise
            failed: UpstreamError | None = exc
        retry = self.config.retry
        stop: stop_base = stop_never
        if retry.max_elapsed > 0:
            stop = stop_after_delay(
                max(retry.max_elapsed - (self.clock.monotonic() - started), 0.0)
            )
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda exc: isinstance(exc, UpstreamError) and exc.retryable),
            wait=_HintedWait(retry.initial_interval, retry.max_interval, retry.multiplier),
            stop=stop,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if failed is not None:
                    error, failed = failed, None
                    raise error
                await self._send(batch, body)

    async def _send(self, batch: list[QueuedRequest], body: bytes) -> None:
        signal = batch[0].signal
        try:
            reply = await self._calls[signal](
                body,
                timeout=self.config.timeout,
                metadata=self._metadata,
                compression=self._compression,
            )
        except grpc.aio.AioRpcError as exc:
            self.metrics.exporter_failed_requests.labels(exc.code().name.lower()).inc()
            error = UpstreamError(
                exc.code(), exc.details() or "", retry_after_from(exc.trailing_metadata())
            )
            log.warning(
                "upstream %s refused %d %s requests: %s",
                self.target.address,
                len(batch),
                signal,
                error,
            )
            self._upstream_failed(error)
            raise error from None
        self._upstream_ok()
        self._count_success(signal, sum(request.items for request in batch), reply)

    def _count_success(self, signal: str, items: int, reply: bytes) -> None:
        metrics = self.metrics
        metrics.exporter_sent_requests.labels(signal).inc()
        rejected = _rejected(signal, reply)
        if signal == "traces":
            metrics.exporter_sent_spans.inc(items - rejected)
        if rejected:
            metrics.exporter_rejected_items.labels(signal).inc(rejected)
            log.warning(
                "upstream rejected %d of %d %s items (not retried)", rejected, items, signal
            )


def _rejected(signal: str, reply: bytes) -> int:
    if not reply:
        return 0
    if signal == "traces":
        return ExportTraceServiceResponse.FromString(reply).partial_success.rejected_spans
    if signal == "metrics":
        return ExportMetricsServiceResponse.FromString(reply).partial_success.rejected_data_points
    return ExportLogsServiceResponse.FromString(reply).partial_success.rejected_log_records


class _HintedWait:
    """Exponential backoff with jitter, but never sooner than upstream asked (RetryInfo)."""

    def __init__(self, initial: float, maximum: float, multiplier: float) -> None:
        # initial * multiplier**n plus up to ``initial`` of jitter, capped at ``maximum``
        # (wait_exponential_jitter's ``initial`` is deprecated, and its replacement is missing
        # from the oldest tenacity this package accepts)
        self._backoff = wait_exponential(
            multiplier=initial, max=maximum, exp_base=multiplier
        ) + wait_random(0, initial)
        self._maximum = maximum

    def __call__(self, state: RetryCallState) -> float:
        wait = min(float(self._backoff(state)), self._maximum)
        exc = state.outcome.exception() if state.outcome else None
        hint = exc.retry_after if isinstance(exc, UpstreamError) else None
        return max(wait, hint or 0.0)
