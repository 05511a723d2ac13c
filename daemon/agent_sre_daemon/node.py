"""The composition root: configuration -> engines, stores and servers; the daemon's life.

The story of a process: :meth:`Node.start` (open the queue, start the forwarder, bind every
listener, write the ready file), :meth:`Node.run` (serve until SIGTERM/SIGINT, reload on
SIGHUP), :meth:`Node.shutdown` (stop intake, flush the queue within the deadline, close).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from agent_sre import __version__
from agent_sre.config import Config, ConfigError, load_config
from agent_sre.cost.pricing import Pricer
from agent_sre.cost.span_cost import PRICING_KEYS, SpanCostEnricher
from agent_sre.tracing.batch import TraceBatchProcessor
from agent_sre.tracing.enrich import NodeIdentity
from agent_sre_daemon.admin.server import AdminServer
from agent_sre_daemon.errors import ReceiverError
from agent_sre_daemon.exporters.otlp import OtlpForwarder
from agent_sre_daemon.exporters.prometheus import MetricsServer
from agent_sre_daemon.ingest.otlp_grpc import OtlpGrpcReceiver
from agent_sre_daemon.ingest.otlp_http import OtlpHttpReceiver
from agent_sre_daemon.ingest.pipeline import Pipeline
from agent_sre_daemon.metrics import MAX_MODEL_LABELS, BoundedLabel, PipelineMetrics
from agent_sre_daemon.proxy.server import ProxyServer
from agent_sre_daemon.slo.runtime import SLOMetrics, SLORuntime
from agent_sre_daemon.stores.lock import StateDirLock, lock_state_dir
from agent_sre_daemon.stores.queue import DurableQueue

if TYPE_CHECKING:
    from collections.abc import Mapping

if TYPE_CHECKING:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

log = logging.getLogger("agent_sre.node")

MIB = 1024 * 1024


class Node:
    """One agent-sre daemon.

    Args:
        config: the validated configuration.
        config_path: the file it came from (None: the embedded default), re-read on reload.
        ready_file: where to write the bound addresses as JSON once every listener is up.
        environ: the environment (Kubernetes identity, variables for reloads).
    """

    def __init__(
        self,
        config: Config,
        config_path: str | None = None,
        ready_file: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.ready_file = ready_file
        self.environ = dict(os.environ if environ is None else environ)
        self.started_at = time.time()
        self.registry = CollectorRegistry()
        self.metrics = PipelineMetrics(self.registry)
        self.addresses: dict[str, str] = {}
        self.ready = False
        self.queue: DurableQueue | None = None
        self.forwarder: OtlpForwarder | None = None
        self._unpriced_model = BoundedLabel(MAX_MODEL_LABELS)
        self.cost_enricher = SpanCostEnricher(
            Pricer(config.budgets.price_overrides), self._count_unpriced
        )
        self.processor = TraceBatchProcessor(
            self._identity(config).resource_attributes(),
            llm_enrichers=[self.cost_enricher],
            enricher_keys=PRICING_KEYS,
        )
        self.pipeline = Pipeline(self.processor, None, self.metrics)
        self.slo = SLORuntime(config, Path(config.state_dir))
        SLOMetrics(self.registry, lambda: self.slo)
        self.grpc_receiver: OtlpGrpcReceiver | None = None
        self.http_receiver: OtlpHttpReceiver | None = None
        self.metrics_server: MetricsServer | None = None
        self.admin_server: AdminServer | None = None
        self.proxy: ProxyServer | None = None
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._state_lock: StateDirLock | None = None

    # -- life -------------------------------------------------------------------------

    async def run(self) -> int:
        """Starts, serves until asked to stop, shuts down; returns the exit status."""
        await self.start()
        loop = asyncio.get_running_loop()
        signals_installed = True
        try:
            loop.add_signal_handler(signal.SIGTERM, self.request_stop)
            loop.add_signal_handler(signal.SIGINT, self.request_stop)
            loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        except (NotImplementedError, RuntimeError):  # not the main thread (tests, embedding)
            signals_installed = False
        try:
            await self._stop.wait()
        finally:
            if signals_installed:
                # A second SIGTERM/SIGINT during the drain stops at once.
                loop.add_signal_handler(signal.SIGTERM, _exit_now)
                loop.add_signal_handler(signal.SIGINT, _exit_now)
            await self.shutdown()
        return 0

    def request_stop(self) -> None:
        log.info("stop requested; draining")
        self._stop.set()

    async def start(self) -> None:
        config = self.config
        self._state_lock = lock_state_dir(Path(config.state_dir))
        self.slo.start()
        self._wire_observers()
        self._open_forwarding(config)
        receivers = config.receivers.otlp
        if receivers.grpc is not None:
            self.grpc_receiver = OtlpGrpcReceiver(
                self.pipeline,
                receivers.grpc.endpoint,
                int(receivers.grpc.max_recv_msg_size_mib * MIB),
            )
            self.addresses["otlp_grpc"] = await self.grpc_receiver.start()
        if receivers.http is not None:
            self.http_receiver = OtlpHttpReceiver(
                self.pipeline,
                receivers.http.endpoint,
                int(receivers.http.max_request_body_size_mib * MIB),
            )
            self.addresses["otlp_http"] = await self.http_receiver.start()
        self.proxy = ProxyServer(config, self._proxy_span, self.registry, Path(config.state_dir))
        proxy_host, proxy_port = await self.proxy.start()
        self.addresses["proxy"] = f"{proxy_host}:{proxy_port}"
        self.metrics_server = MetricsServer(
            self.registry,
            config.exporters.prometheus.endpoint,
            ready=lambda: self.ready,
            before_scrape=self._refresh_gauges,
        )
        self.addresses["metrics"] = await self.metrics_server.start()
        self.admin_server = AdminServer(
            config.admin.endpoint,
            token=lambda: self.config.admin.token,
            status=self.status,
            reload=self.reload,
            extra_routes=[*self.slo.admin_routes(), *self.proxy.admin_routes()],
        )
        self.addresses["admin"] = await self.admin_server.start()
        for name, address in self.addresses.items():
            log.info("listening: %s on %s", name, address)
        self.ready = True
        if self.ready_file:
            _write_json_atomically(Path(self.ready_file), {**self.addresses, "pid": os.getpid()})
        log.info("agent-sre %s ready (node %s)", __version__, self.processor.resource_attributes)

    async def shutdown(self) -> None:
        """Stops intake, flushes the queue within the deadline, then closes everything."""
        self.ready = False
        self.pipeline.accepting = False
        if self.grpc_receiver is not None:
            await self.grpc_receiver.stop(grace=2.0)
        if self.http_receiver is not None:
            await self.http_receiver.stop(grace=2.0)
        if self.proxy is not None:
            await self.proxy.stop()  # its last spans go into the queue before it closes
        await self._close_forwarding(self.config.exporters.otlp.shutdown_timeout)
        await self.slo.stop()
        if self.admin_server is not None:
            await self.admin_server.stop()
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        if self._state_lock is not None:
            self._state_lock.release()
            self._state_lock = None
        log.info("stopped")

    def _proxy_span(self, request: ExportTraceServiceRequest) -> None:
        """The spans of proxied calls join the received ones (SLIs, queue, upstream)."""
        try:
            self.pipeline.export_traces_nowait(request, "proxy", request.ByteSize())
        except ReceiverError as exc:
            # The call itself already happened; its span cannot be pushed back on anyone.
            self.metrics.dropped_items.labels("traces", f"proxy_{exc.reason}").inc()
            log.warning("span of a proxied call dropped: %s", exc.message)

    def _count_unpriced(self, model: str) -> None:
        self.metrics.unpriced_spans.labels(self._unpriced_model(model)).inc()

    def _wire_observers(self) -> None:
        """Points the span pass at the current engines (they are rebuilt on reload)."""
        observers = [self.slo.observe] if len(self.slo.engine) else []
        self.processor.set_observers(observers, self.slo.wanted_keys)

    # -- forwarding -------------------------------------------------------------------

    def _open_forwarding(self, config: Config) -> None:
        otlp = config.exporters.otlp
        if not otlp.endpoint:
            log.info("exporters.otlp.endpoint is empty: nothing is forwarded or queued")
            return
        state_dir = Path(config.state_dir)
        self.queue = DurableQueue(
            state_dir / "queue.db", int(otlp.queue.max_size_mib * MIB), fsync=otlp.queue.fsync
        )
        if len(self.queue):
            log.info(
                "queue holds %d requests (%d bytes) from before; sending them first",
                len(self.queue),
                self.queue.size_bytes,
            )
        self.forwarder = OtlpForwarder(otlp, self.queue, self.metrics)
        self.pipeline.queue = self.queue
        self.pipeline.on_queued = self.forwarder.wake
        self.forwarder.start()

    async def _close_forwarding(self, flush_timeout: float) -> None:
        if self.forwarder is not None:
            if flush_timeout > 0 and not await self.forwarder.drain(flush_timeout):
                log.warning(
                    "upstream did not take everything within %.1fs; %d requests stay queued",
                    flush_timeout,
                    len(self.queue or ()),
                )
            await self.forwarder.stop()
            self.forwarder = None
        self.pipeline.queue = None
        self.pipeline.on_queued = lambda: None
        if self.queue is not None:
            self.queue.close()
            self.queue = None

    # -- reload -----------------------------------------------------------------------

    async def reload(self) -> tuple[bool, str]:
        """Re-reads the configuration; a bad file is refused and the old one keeps running."""
        async with self._reload_lock:
            try:
                new = load_config(self.config_path, self.environ | dict(os.environ))
            except ConfigError as exc:
                self.metrics.config_reloads.labels("error").inc()
                log.error("reload refused, keeping the running configuration:\n%s", exc)
                return False, str(exc)
            old, self.config = self.config, new
            self.processor.resource_attributes = self._identity(new).resource_attributes()
            if new.budgets.price_overrides != old.budgets.price_overrides:
                self.cost_enricher.pricer = Pricer(new.budgets.price_overrides)
            carried = self.slo.reload(new)
            self._wire_observers()
            log.info("SLO counts carried over: %s", ", ".join(carried) or "none")
            if old.exporters.otlp != new.exporters.otlp or old.state_dir != new.state_dir:
                await self._close_forwarding(flush_timeout=0)
                self._open_forwarding(new)
            restart_needed = [
                name
                for name, before, after in (
                    ("receivers", old.receivers, new.receivers),
                    ("exporters.prometheus", old.exporters.prometheus, new.exporters.prometheus),
                    ("admin.endpoint", old.admin.endpoint, new.admin.endpoint),
                )
                if before != after
            ]
            if self.proxy is not None:
                restart_needed += self.proxy.reload(new)
            message = "configuration reloaded"
            if restart_needed:
                message += f"; {', '.join(restart_needed)} changed and take effect on restart"
                log.warning(message)
            else:
                log.info(message)
            self.metrics.config_reloads.labels("ok").inc()
            return True, message

    # -- status -----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        queue = self.queue
        oldest = queue.oldest_created() if queue is not None else None
        return {
            "version": __version__,
            "node": self.processor.resource_attributes,
            "ready": self.ready,
            "uptime_seconds": round(time.time() - self.started_at, 3),
            "addresses": self.addresses,
            "upstream": self.config.exporters.otlp.endpoint or None,
            "queue": {
                "requests": len(queue) if queue is not None else 0,
                "bytes": queue.size_bytes if queue is not None else 0,
                "oldest_age_seconds": round(time.time() - oldest, 3) if oldest else 0.0,
            },
        }

    def _refresh_gauges(self) -> None:
        queue = self.queue
        metrics = self.metrics
        metrics.queue_size_bytes.set(queue.size_bytes if queue is not None else 0)
        metrics.queue_requests.set(len(queue) if queue is not None else 0)
        oldest = queue.oldest_created() if queue is not None else None
        metrics.queue_oldest_age.set(max(0.0, time.time() - oldest) if oldest else 0.0)

    def _identity(self, config: Config) -> NodeIdentity:
        name = config.node.name or socket.gethostname()
        return NodeIdentity.from_environ(name, self.environ)


def _exit_now() -> None:
    log.warning("second stop signal: exiting without finishing the drain")
    os._exit(1)


def _write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
