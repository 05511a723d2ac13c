"""The trace buffer: accepted requests and captured calls, written off the event loop.

A span tap adds each span to a trace index of the request in hand (no span view is built);
the batch observer, called right after the request's spans, queues the request's bytes (the
ones the pipeline serialised once for the upstream queue) with that index: no copy, no parse.
A writer thread wakes every :data:`FLUSH_SECONDS` (or when much is waiting), scans the
bytes for secrets and writes them in one transaction, then evicts. Reads drain what
is waiting first, so a query sees every span accepted before it.
"""

from __future__ import annotations

import collections
import logging
import sqlite3
import threading
from typing import TYPE_CHECKING

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agent_sre.replay.redaction import Redactor
from agent_sre.replay.streams import reassembled, redact_chunks
from agent_sre.replay.traces import TraceIndex, TraceSummary, redact_spans
from agent_sre_daemon.replay.store import Batch
from agent_sre_daemon.stores import ballast

if TYPE_CHECKING:
    from collections.abc import Callable

    from agent_sre.replay.exchange import Exchange
    from agent_sre_daemon.replay.metrics import ReplayMetrics
    from agent_sre_daemon.replay.store import TraceStore

log = logging.getLogger("agent_sre.replay")

FLUSH_SECONDS = 0.25
WAKE_AT = 512
"""Requests waiting that wake the writer before its next tick."""
EVICT_SECONDS = 5.0
"""Retention is enforced this often (the size cap at every write)."""
MAX_WAITING = 100_000
"""Requests waiting beyond this are dropped (counted): the buffer never holds the node up."""
MAX_WAITING_BYTES = 64 << 20
"""Bytes waiting (requests' and captured calls' bodies, :data:`ITEM_OVERHEAD` more each)
beyond which new ones are dropped (counted): the buffer's memory is bounded whatever the
writer's pace and the bodies' sizes."""
ITEM_OVERHEAD = 1024
"""What a waiting item costs beside its bodies (its summaries or its call's fields)."""
SCAN_BYTES = 4 << 20
"""Bytes of items one pass of the redaction rules looks over at most (a flush's items go in
as few passes: each gives the GIL up, to wait up to 5 ms for it back on a busy node)."""
SCAN_FEWEST = 8
"""A group that may hold a credential is halved and looked over again down to this many
items, each of which is then gone over on its own."""


class TraceBuffer:
    """Feeds the store from the event loop without blocking it.

    Args:
        store: the SQLite store (its lock serialises the writer and readers).
        now: the node clock's ``time``.
        metrics: the engine's metrics.
    """

    report: Callable[[Exception | None, bool], None] | None = None
    """Called on the writer thread after each pass: the error it failed with (None when it
    went well) and whether anything was waiting to be written."""

    def __init__(self, store: TraceStore, now: Callable[[], float], metrics: ReplayMetrics):
        self.store = store
        self.now = now
        self.metrics = metrics
        self._requests: collections.deque[tuple[bytes, float, list[TraceSummary]]] = (
            collections.deque()
        )
        self.index = TraceIndex()
        # each call with the size it was counted at in the bytes waiting
        self._exchanges: collections.deque[tuple[Exchange, int]] = collections.deque()
        self._marks: collections.deque[tuple[str, int]] = collections.deque()
        # bytes waiting = queued - written; each counter has one writer (the event loop; the
        # store's lock holder), so neither loses an update to the other thread
        self._queued_bytes = 0
        self._written_bytes = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.failures = 0
        self._failing = False
        self._yielding = False
        self._evicted_at = float("-inf")
        self.redactor = Redactor()
        """Applied to every captured body before it is written (the engine sets it)."""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="replay-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Writes what is waiting and ends the thread (blocking: run it in a thread)."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(max(0.0, timeout))

    # hot path: per accepted request
    def observe(self, body: bytes, now: float) -> None:
        """The batch observer: queues the request's bytes with its traces' summaries (the
        writer thread does the rest)."""
        summaries = self.index.take()
        requests = self._requests
        size = len(body) + ITEM_OVERHEAD
        if len(requests) >= MAX_WAITING or not self._room_for(size):
            self.metrics.dropped_requests.inc()
            return
        self._queued_bytes += size
        requests.append((body, now, summaries))
        if len(requests) == WAKE_AT:
            self._wake.set()

    def capture(self, exchange: Exchange) -> None:
        """Queues a captured call (redacted by the writer, before anything is written)."""
        size = exchange.size() + ITEM_OVERHEAD
        if not self._room_for(size):
            self.metrics.dropped_calls.inc()
            return
        self._queued_bytes += size
        self._exchanges.append((exchange, size))

    def _room_for(self, size: int) -> bool:
        return self._queued_bytes - self._written_bytes + size <= MAX_WAITING_BYTES

    def mark(self, trace_id: str, bits: int) -> None:
        """Queues reasons to keep a trace longer (applied after what is waiting is written)."""
        self._marks.append((trace_id, bits))

    def flush(self) -> None:
        """Writes everything waiting (blocking; takes the store's lock)."""
        with self.store.lock:
            self._flush_locked()

    def _run(self) -> None:
        while True:
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            pending = bool(self._requests or self._exchanges or self._marks)
            try:
                with self.store.lock:
                    if pending and self.store.short_of_room():
                        self._yield_room()
                    self._flush_locked()
                    now = self.now()
                    evicted = 0
                    over = self.store.size_bytes > self.store.limits.max_bytes
                    if over or now - self._evicted_at >= EVICT_SECONDS or self._stopping:
                        evicted = self.store.evict(now)
                        self._evicted_at = now
                if evicted:
                    self.metrics.evicted_traces.inc(evicted)
                self.metrics.stored_bytes.set(self.store.size_bytes)
            except Exception as exc:
                self.failures += 1
                self.metrics.write_errors.inc()
                self._log_failure(exc)
                self._report(exc, pending)
                if ballast.is_full(exc):
                    self._evict_when_full()
            else:
                if self._yielding and not self.store.short_of_room():
                    self._yielding = False
                    log.warning("trace buffer: room again; recent traces are kept again")
                if self._failing and pending:
                    self._failing = False
                    log.warning("trace buffer: writing again")
                self._report(None, pending)
            if self._stopping:
                return

    def write_failed(self, exc: Exception) -> None:
        """A write failed outside the writer thread (a read flushing first): counted and
        logged as the writer's own failures are."""
        self.failures += 1
        self.metrics.write_errors.inc()
        self._log_failure(exc)

    def _yield_room(self) -> None:
        """The file system is short of room: the buffer evicts to leave the other stores
        theirs (the durable queue first), and drops what waits when that is not enough
        (counted in ``agent_sre_replay_dropped_requests``, logged once a spell)."""
        evicted = self.store.evict(self.now())
        self._evicted_at = self.now()
        if evicted:
            self.metrics.evicted_traces.inc(evicted)
        if not self.store.short_of_room():
            return
        requests, exchanges = self._take_waiting()
        self.metrics.dropped_requests.inc(len(requests))
        self.metrics.dropped_calls.inc(len(exchanges))
        if not self._yielding:
            self._yielding = True
            log.error(
                "trace buffer: %s is short of room; recent traces are not kept until it has "
                "some (the room left belongs to the upstream queue)",
                self.store.path.parent,
            )

    def _evict_when_full(self) -> None:
        """The file system is full, so the buffer gives room back at once: deleting needs
        room too (SQLite's WAL), which the ballast of ``state_dir`` keeps for this."""
        ballast.release("the trace buffer cannot write or drop traces")
        try:
            with self.store.lock:
                evicted = self.store.evict(self.now())
                self._evicted_at = self.now()
        except Exception as exc:
            log.debug("trace buffer: eviction on a full disk failed: %s", exc)
            return
        if evicted:
            self.metrics.evicted_traces.inc(evicted)
        self.metrics.stored_bytes.set(self.store.size_bytes)

    def _log_failure(self, exc: Exception) -> None:
        """Once per spell of failures: a full or failing disk in one line (the requests
        waiting are dropped from the buffer, never from the pipeline), anything else with
        its traceback."""
        if self._failing:
            return
        self._failing = True
        if isinstance(exc, OSError | sqlite3.Error):
            log.error(
                "trace buffer: cannot write to %s (%s); recent traces are not kept until it"
                " can (counted in agent_sre_replay_write_errors_total)",
                self.store.path.parent,
                exc,
            )
        else:
            log.exception("trace buffer: writing failed")

    def _report(self, error: Exception | None, wrote: bool) -> None:
        if self.report is None:
            return
        try:
            self.report(error, wrote)
        except Exception:  # a reporting bug must not stop the writer
            log.exception("trace buffer: reporting failed")

    def _flush_locked(self) -> None:
        requests, exchanges, marks = self._requests, self._exchanges, self._marks
        if not requests and not exchanges and not marks:
            return
        taken, calls = self._take_waiting()
        finds_in = self.redactor.finds_in
        batches = []
        spans = 0
        flags = flagged(finds_in, [[body] for body, _, _ in taken])
        for (body, at, summaries), dirty in zip(taken, flags, strict=True):
            count = sum(s.spans for s in summaries)
            stored = self._redacted(body, summaries) if dirty else body
            batches.append(Batch(stored, at, summaries, count))
            spans += count
        captured = []
        streams = [reassembled(exchange.content_type) for exchange in calls]
        flags = flagged(finds_in, [_scanned(e, s) for e, s in zip(calls, streams, strict=True)])
        for exchange, stream, dirty in zip(calls, streams, flags, strict=True):
            if dirty:
                redacted(exchange, self.redactor)
            elif stream:  # its stream, event by event
                exchange.chunks = redact_chunks(
                    exchange.chunks, self.redactor, exchange.content_type
                )
            # ASCII (json's default): its length is its size in bytes
            captured.append((exchange, exchange.to_json_text()))
        self.store.write(batches, captured)
        if marks:
            reasons = []
            while marks:
                reasons.append(marks.popleft())
            self.store.mark(reasons)
        self.metrics.stored_spans.inc(spans)
        if captured:
            self.metrics.captured_calls.inc(len(captured))

    def _take_waiting(
        self,
    ) -> tuple[list[tuple[bytes, float, list[TraceSummary]]], list[Exchange]]:
        """Takes the requests and calls waiting (the store's lock held)."""
        requests, exchanges = self._requests, self._exchanges
        taken = [requests.popleft() for _ in range(len(requests))]
        waiting = [exchanges.popleft() for _ in range(len(exchanges))]
        self._written_bytes += sum(len(body) + ITEM_OVERHEAD for body, _, _ in taken) + sum(
            size for _, size in waiting
        )
        return taken, [exchange for exchange, _ in waiting]

    def _redacted(self, body: bytes, summaries: list[TraceSummary]) -> bytes:
        """The request's bytes with every credential in a field a client chose redacted
        (and its traces' index rows: root span names, agents). A scan of the bytes decides;
        only a request that may hold one is decoded again and redacted field by field."""
        redactor = self.redactor
        if not redactor.finds(body):
            return body
        copy = ExportTraceServiceRequest.FromString(body)
        redact_spans(copy, redactor)
        redacted = copy.SerializeToString()
        for summary in summaries:
            summary.root = redactor.redact_text(summary.root)
            summary.agent = redactor.redact_text(summary.agent)
        if redacted != body:
            self.metrics.redacted_requests.inc()
        return redacted


def redacted(exchange: Exchange, redactor: Redactor) -> Exchange:
    """``exchange`` with every field a client or an upstream chose redacted (in place; it is
    not shared): the path and query, the request body, the answer over its reassembled
    stream."""
    text = redactor.redact_text
    exchange.path = text(exchange.path)
    exchange.query = text(exchange.query)
    exchange.error = text(exchange.error)
    exchange.request = redactor.redact(exchange.request)
    exchange.chunks = redact_chunks(exchange.chunks, redactor, exchange.content_type)
    return exchange


def flagged(finds_in: Callable[[list[bytes]], bool], items: list[list[bytes]]) -> list[bool]:
    """Which of ``items`` (each its parts) may hold what the rules look for, in few passes:
    one over up to :data:`SCAN_BYTES` of items, and over each half of a group a pass found
    something in, down to :data:`SCAN_FEWEST` items, all flagged (a few such items among
    thousands cost a few passes; flagged items are gone over on their own)."""
    out = [False] * len(items)
    start = size = 0
    for n, item in enumerate(items):
        grown = size + sum(len(part) for part in item)
        if n > start and grown > SCAN_BYTES:
            _look(finds_in, items, start, n, out)
            start, grown = n, grown - size
        size = grown
    if start < len(items):
        _look(finds_in, items, start, len(items), out)
    return out


def _look(
    finds_in: Callable[[list[bytes]], bool],
    items: list[list[bytes]],
    lo: int,
    hi: int,
    out: list[bool],
) -> None:
    # a function of the module, not a closure: a recursive closure is a reference cycle,
    # which would hold a flush's bodies until the garbage collector runs
    if not finds_in([part for item in items[lo:hi] for part in item]):
        return
    if hi - lo <= SCAN_FEWEST:
        out[lo:hi] = [True] * (hi - lo)
        return
    middle = (lo + hi) // 2
    _look(finds_in, items, lo, middle, out)
    _look(finds_in, items, middle, hi, out)


def _scanned(exchange: Exchange, stream: bool) -> list[bytes]:
    """The bytes :func:`redacted` reads of a call, as one pass of the rules looks over them
    (``stream``: its answer is read event by event by :func:`redact_chunks` on its own)."""
    parts = [
        exchange.path.encode("utf-8", "surrogatepass"),
        exchange.query.encode("utf-8", "surrogatepass"),
        exchange.error.encode("utf-8", "surrogatepass"),
        exchange.request,
    ]
    if not stream:
        chunks = exchange.chunks
        parts.append(chunks[0][1] if len(chunks) == 1 else b"".join(c for _, c in chunks))
    return parts


def redacted_chunks(
    chunks: list[tuple[float, bytes]], redactor: Redactor
) -> list[tuple[float, bytes]]:
    """Chunks of an answer of no known stream shape, redacted (see :func:`redact_chunks`)."""
    return redact_chunks(chunks, redactor)
