"""The replay engine's proxy stages.

``replay`` (capture slot, first): answers calls bound to a replay session from the
recording. ``capture`` (capture slot): keeps the redacted request and response of calls
that reach it, streams as chunks with their timing. ``capture_refusals`` (record slot):
keeps the calls refused before the capture slot (budgets, blocks, throttles, faults).
"""

from __future__ import annotations

import random
import zlib
from typing import TYPE_CHECKING

from aiohttp import web

from agent_sre.replay.exchange import Exchange
from agent_sre.replay.script import Mismatch
from agent_sre.tracing import conventions as conv
from agent_sre_daemon.errors import proxy_error
from agent_sre_daemon.replay.sessions import HEADER, ReplaySession, match, write_answer

if TYPE_CHECKING:
    from agent_sre_daemon.proxy.call import Call
    from agent_sre_daemon.proxy.stage import StageSlot
    from agent_sre_daemon.replay.engine import ReplayEngine

REPLAY_SESSION = "agent_sre.replay.session"
MAX_TRACKED_TRACES = 10_000


class ReplayStage:
    name = "replay"
    slot: StageSlot = "capture"

    def __init__(self, engine: ReplayEngine) -> None:
        self.engine = engine

    async def on_request(self, call: Call) -> web.StreamResponse | None:
        engine = self.engine
        header = call.request.headers.get(HEADER)  # (never sent upstream: see routing)
        if not engine.sessions.sessions and header is None:
            return None
        api = call.route.config.api
        found = engine.sessions.bound(call.route.prefix, header)
        if found is None:
            return None
        if isinstance(found, str):
            call.fail("replay_mismatch", found)
            engine.metrics.replayed_calls.labels("mismatch").inc()
            return proxy_error(api, "replay_mismatch", found)
        session: ReplaySession = found
        call.record.attributes[REPLAY_SESSION] = session.id
        full_path = call.route.prefix.rstrip("/") + call.path
        answer = match(session, call.request.method, full_path, call.body)
        if isinstance(answer, Mismatch):
            engine.metrics.replayed_calls.labels("mismatch").inc()
            if session.passthrough:
                session.last_mismatch = answer.message
                return None
            call.fail("replay_mismatch", answer.message)
            session.last_mismatch = answer.message
            engine.refused(
                session, f"{call.request.method} {engine.redactor.redact_text(full_path)}"
            )
            return proxy_error(api, "replay_mismatch", answer.message)
        engine.metrics.replayed_calls.labels("matched").inc()
        response, facts = await write_answer(call.request, answer, session.timing, call.plan)
        call.streamed = answer.streamed
        if facts is not None:
            call.facts = facts
        return response

    async def on_response(self, call: Call) -> None:
        return None


class _Recording:
    """The chunks of one call's answer as they go to the client, up to the size limit."""

    def __init__(self, call: Call, engine: ReplayEngine) -> None:
        self.call = call
        self.engine = engine
        self.chunks: list[tuple[float, bytes]] = []
        self.size = 0
        self.truncated = False

    # hot path: per chunk of a captured call
    async def tap(self, chunk: bytes) -> bytes:
        limit = self.engine.max_body
        if self.size + len(chunk) > limit:
            self.truncated = True
            keep = chunk[: max(0, limit - self.size)]
        else:
            keep = chunk
        if keep:
            offset = self.engine.clock.monotonic() - self.call.started
            self.chunks.append((offset, keep))
            self.size += len(keep)
        return chunk


class CaptureStage:
    name = "capture"
    slot: StageSlot = "capture"

    def __init__(self, engine: ReplayEngine) -> None:
        self.engine = engine
        self._recordings: dict[int, _Recording] = {}
        self.entered: set[int] = set()
        """Calls this stage saw on their way in; the refusal capture (which every call
        passes after this stage on its way back) takes them out."""

    async def on_request(self, call: Call) -> web.StreamResponse | None:
        if self.engine.capture_config is None:
            return None
        recording = _Recording(call, self.engine)
        self._recordings[id(call)] = recording
        self.entered.add(id(call))
        call.add_chunk_tap(recording.tap)
        return None

    async def on_response(self, call: Call) -> None:
        recording = self._recordings.pop(id(call), None)
        if recording is None:
            return
        self.engine.keep_call(call, recording.chunks, recording.truncated)


class RefusalCaptureStage:
    """Keeps the calls answered before the capture slot (refusals, injected faults)."""

    name = "capture_refusals"
    slot: StageSlot = "record"

    def __init__(self, engine: ReplayEngine, capture: CaptureStage) -> None:
        self.engine = engine
        self.capture = capture

    async def on_request(self, call: Call) -> web.StreamResponse | None:
        return None

    async def on_response(self, call: Call) -> None:
        engine = self.engine
        if id(call) in self.capture.entered:
            self.capture.entered.discard(id(call))
            return
        if engine.capture_config is None or call.reached_upstream:
            return
        response = call.response
        if call.status < 400 or not isinstance(response, web.Response):
            return
        if REPLAY_SESSION in call.record.attributes:
            return
        body = response.body if isinstance(response.body, bytes) else b""
        offset = engine.clock.monotonic() - call.started
        engine.keep_call(call, [(offset, body[: engine.max_body])], len(body) > engine.max_body)


def is_interesting(call: Call) -> bool:
    return (
        call.status >= 400
        or call.record.error is not None
        or conv.AGENT_SRE_CHAOS_FAULT in call.record.attributes
    )


def build_exchange(
    engine: ReplayEngine, call: Call, chunks: list[tuple[float, bytes]], truncated: bool
) -> Exchange:
    # What the agent sent, not what went upstream: a cassette is answered to the agent's
    # own requests (``replay serve``), and so is a replay session.
    request_encoding = call.request.headers.get("Content-Encoding")
    body, cut = _decoded_body(call.body, request_encoding, engine.max_body)
    truncated = truncated or cut
    response = call.response
    content_type = response.content_type if response is not None else ""
    encoding = response.headers.get("Content-Encoding") if response is not None else None
    if chunks and encoding and encoding.strip().lower() not in ("", "identity"):
        # stored decoded, so redaction sees the text and a replay needs no encoding
        whole, cut = _decoded_body(b"".join(c for _, c in chunks), encoding, engine.max_body)
        chunks = [(chunks[0][0], whole)] if whole else []
        truncated = truncated or cut
    trace = call.trace
    return Exchange(
        route=call.route.name,
        prefix=call.route.prefix,
        api=call.route.config.api,
        method=call.request.method,
        path=call.path,
        query=call.query,
        request=body,
        status=call.status,
        content_type=content_type,
        chunks=chunks,
        streamed=call.streamed,
        truncated=truncated,
        error=call.record.error or "",
        trace_id=trace.trace_id.hex() if trace is not None else "",
        span_id=trace.span_id.hex() if trace is not None else "",
        at=call.record.start_ns / 1e9,
    )


def sampled(share: float) -> bool:
    return share >= 1.0 or (share > 0.0 and random.random() < share)  # noqa: S311


def _decoded_body(body: bytes, encoding: str | None, limit: int) -> tuple[bytes, bool]:
    """``body`` without its content encoding, cut at ``limit``; and whether anything was
    lost. A body that cannot be decoded is not kept at all: redaction could not read it."""
    name = (encoding or "").strip().lower()
    if name not in ("", "identity"):
        if name not in ("gzip", "x-gzip", "deflate"):
            return b"", True
        decoder = zlib.decompressobj(47)  # gzip or zlib, detected
        try:
            body = decoder.decompress(body, limit + 1)
        except zlib.error:
            return b"", True
    if len(body) > limit:
        return body[:limit], True
    return body, False
