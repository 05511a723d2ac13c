"""The replay engine's component: the trace buffer, call capture and replay sessions."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, ClassVar

from agent_sre.replay.redaction import Redactor
from agent_sre.replay.signals import MismatchDigest
from agent_sre.replay.traces import INDEX_KEYS, INTERESTING
from agent_sre_daemon.component import Component, Prepared, ReloadError, SpanTapSpec
from agent_sre_daemon.proxy.call import AfterAnswer
from agent_sre_daemon.replay.admin import ReplayAdmin
from agent_sre_daemon.replay.buffer import TraceBuffer
from agent_sre_daemon.replay.health import StoreReporter
from agent_sre_daemon.replay.metrics import ReplayMetrics
from agent_sre_daemon.replay.sessions import SessionTable
from agent_sre_daemon.replay.stages import (
    MAX_TRACKED_TRACES,
    CaptureStage,
    RefusalCaptureStage,
    ReplayStage,
    build_exchange,
    is_interesting,
    sampled,
)
from agent_sre_daemon.replay.store import Limits, TraceStore

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aiohttp import web
    from prometheus_client import CollectorRegistry

    from agent_sre.config import Config
    from agent_sre.replay.spec import CaptureConfig, ReplayConfig
    from agent_sre_daemon.component import BatchObserver, NodeContext, SpanObserverSpec
    from agent_sre_daemon.proxy.call import Call
    from agent_sre_daemon.proxy.stage import Stage
    from agent_sre_daemon.replay.sessions import ReplaySession

log = logging.getLogger("agent_sre.replay")

STORE_FILE = "replay.sqlite"
CAPTURED = "agent_sre.replay.captured"
"""Span attribute: the call's request and response bodies are in the trace buffer."""
MIB = 1024 * 1024


def _limits(config: ReplayConfig) -> Limits:
    return Limits(config.retention, config.keep_interesting_for, int(config.max_size_mib * MIB))


class ReplayEngine(Component):
    """Keeps recent traces and captured calls; answers calls from a recorded run."""

    name: ClassVar[str] = "replay"
    title: ClassVar[str] = "Replay (trace buffer, capture, sessions)"

    def __init__(self, context: NodeContext) -> None:
        self.context = context
        self.clock = context.clock
        self.metrics = self.register_metrics(context.registry)
        self.store: TraceStore | None = None
        self.buffer: TraceBuffer | None = None
        self.sessions = SessionTable(context.config.replay.max_sessions)
        self.mismatches = MismatchDigest()
        self._apply(context.config.replay)
        self._per_trace: dict[str, int] = {}
        self._after = AfterAnswer("capturing a proxied call")
        capture = CaptureStage(self)
        self._stages: list[Stage] = [ReplayStage(self), capture, RefusalCaptureStage(self, capture)]
        self.admin = ReplayAdmin(self)
        context.provide("replay", self)

    def _apply(self, config: ReplayConfig) -> None:
        self.config = config
        on = config.enabled and config.capture.enabled
        self.capture_config: CaptureConfig | None = config.capture if on else None
        self.max_body = config.capture.max_body_kib * 1024
        self.max_trace_bytes = int(config.capture.max_trace_mib * MIB)
        self.redactor = Redactor(config.redaction.patterns)
        self.sessions.limit = config.max_sessions
        if self.buffer is not None:
            self.buffer.redactor = self.redactor
            self.buffer.store.limits = _limits(config)

    @classmethod
    def register_metrics(cls, registry: CollectorRegistry) -> ReplayMetrics:
        return ReplayMetrics(registry)

    # -- life ---------------------------------------------------------------------------

    async def start(self) -> dict[str, str]:
        if not self.config.enabled:
            return {}
        path = self.context.state_dir / STORE_FILE
        self.store = await asyncio.to_thread(TraceStore, path, _limits(self.config), self.clock)
        self.buffer = TraceBuffer(self.store, self.clock.time, self.metrics)
        self.buffer.redactor = self.redactor
        self.buffer.report = StoreReporter(
            asyncio.get_running_loop(), self.context.bus, self.store, self.clock.time
        )
        self.buffer.start()
        log.info("trace buffer in %s (%d bytes stored)", path, self.store.size_bytes)
        return {}

    async def stop(self, deadline: float) -> None:
        self._after.run()  # the last calls' captures, before the buffer writes its last
        buffer, store = self.buffer, self.store
        if buffer is not None:
            await asyncio.to_thread(buffer.stop, deadline - self.clock.monotonic())
        if store is not None:
            await asyncio.to_thread(store.close)
        self.buffer = self.store = None

    async def prepare_reload(self, new: Config) -> Prepared:
        config = new.replay
        restart = ["replay.enabled"] if config.enabled != self.config.enabled else []
        try:
            Redactor(config.redaction.patterns)
        except Exception as exc:  # validated already; a last guard
            raise ReloadError(f"replay.redaction: {exc}") from exc

        async def commit() -> None:
            enabled = self.config.enabled
            self._apply(config.model_copy(update={"enabled": enabled}))

        return Prepared(needs_restart=restart, commit=commit)

    # -- what it offers -----------------------------------------------------------------

    def span_observers(self) -> Sequence[SpanObserverSpec | SpanTapSpec]:
        if self.buffer is None:
            return []
        return [SpanTapSpec(self.buffer.index.tap, INDEX_KEYS)]

    def batch_observers(self) -> list[BatchObserver]:
        return [self.buffer.observe] if self.buffer is not None else []

    def proxy_stages(self) -> list[Stage]:
        return self._stages

    def admin_routes(self) -> list[web.RouteDef]:
        return self.admin.routes()

    def status(self) -> dict[str, Any]:
        store = self.store
        return {
            "replay": {
                "enabled": self.config.enabled,
                "stored_bytes": store.size_bytes if store is not None else 0,
                "sessions": len(self.sessions.sessions),
            }
        }

    def keep(self, trace_id: str, reason: str) -> None:
        """Keeps trace ``trace_id`` (hex) for ``replay.keep_interesting_for``, because of
        ``reason`` (``incident``, ``slo_bad``, ``error``, ``chaos_fault``, ``refusal``): the
        service ``"replay"`` other engines use to say a trace matters."""
        if reason not in INTERESTING:
            raise ValueError(f"reason {reason!r}: one of {', '.join(INTERESTING)}")
        if self.buffer is not None:
            self.buffer.mark(trace_id.lower(), 1 << INTERESTING.index(reason))

    def refused(self, session: ReplaySession, message: str) -> None:
        """A session refused a call matching no recorded one: ``replay_mismatch``, at most
        once a minute per session. ``message`` names the call (method, path), never its
        body: signals are read without the admin token."""
        signal = self.mismatches.refused(session.id, session.trace_id, message, self.clock.time())
        if signal is not None:
            self.context.bus.publish(signal)

    # -- capture ------------------------------------------------------------------------

    def keep_call(
        self,
        call: Call,
        chunks: list[tuple[float, bytes]],
        truncated: bool,
    ) -> None:
        """Queues the call's bodies when they are to be kept (interesting, or sampled)."""
        config, buffer = self.capture_config, self.buffer
        if config is None or buffer is None:
            return
        if not is_interesting(call) and not sampled(config.share):
            return
        call.record.attributes[CAPTURED] = True
        # built, measured and queued just after the answer is written: not on its path
        self._after.add(self._keep, call, chunks, truncated)

    def _keep(self, call: Call, chunks: list[tuple[float, bytes]], truncated: bool) -> None:
        buffer = self.buffer
        if buffer is None:
            return
        exchange = build_exchange(self, call, chunks, truncated)
        used = self._per_trace.get(exchange.trace_id, 0)
        if used + exchange.size() > self.max_trace_bytes:
            # over the trace's share: the call is listed, its bodies are not kept
            exchange.request, exchange.chunks, exchange.truncated = b"", [], True
        if len(self._per_trace) >= MAX_TRACKED_TRACES:
            self._per_trace.clear()
        self._per_trace[exchange.trace_id] = used + exchange.size()
        buffer.capture(exchange)
