"""The replay engine's admin API.

``GET /v1/traces`` (``agent``, ``since``, ``until``, ``status=error``, ``kind``, ``limit``),
``GET /v1/traces/diff?a=&b=``, ``GET /v1/traces/{id}`` (OTLP/JSON),
``GET /v1/traces/{id}/spans`` (the span tree), ``GET /v1/traces/{id}/cassette``,
``GET|POST /v1/replay/sessions``, ``DELETE /v1/replay/sessions/{id}``.

Reads that hand out captured bodies (a whole trace, a cassette, a diff) or session header
values are private: they need the admin token, loopback or not. The list of traces and a
trace's span tree stay open to loopback readers.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from agent_sre.replay.cassette import Cassette
from agent_sre.replay.diff import diff_traces
from agent_sre.replay.script import ReplayScript
from agent_sre.replay.traces import KINDS, assemble, flatten, span_tree, to_otlp_json
from agent_sre_daemon.admin.access import private_read
from agent_sre_daemon.admin.inputs import json_body, query_number
from agent_sre_daemon.errors import admin_error, admin_storage_unavailable
from agent_sre_daemon.replay.sessions import ReplaySession
from agent_sre_daemon.replay.store import TraceQuery

if TYPE_CHECKING:
    from collections.abc import Callable

    from agent_sre.replay.exchange import Exchange
    from agent_sre_daemon.replay.engine import ReplayEngine
    from agent_sre_daemon.replay.store import TraceStore

T = TypeVar("T")
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_LIMIT = 1000
MAX_EPOCH_SECONDS = 9.2e9
"""``since``/``until`` beyond this (the year 2261) would not fit the store's nanoseconds."""


class BadQueryError(ValueError):
    pass


class ReplayAdmin:
    def __init__(self, engine: ReplayEngine) -> None:
        self.engine = engine

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/traces", self._list),
            web.get("/v1/traces/diff", self._diff),
            web.get("/v1/traces/{trace_id}", self._trace),
            web.get("/v1/traces/{trace_id}/spans", self._spans),
            web.get("/v1/traces/{trace_id}/cassette", self._cassette),
            web.get("/v1/replay/sessions", self._sessions),
            web.post("/v1/replay/sessions", self._open),
            web.delete("/v1/replay/sessions/{session_id}", self._close),
        ]

    async def _read(self, read: Callable[[TraceStore], T]) -> T:
        """Runs ``read`` on the store off the event loop, after writing what is waiting."""
        buffer = self.engine.buffer
        if buffer is None:
            raise web.HTTPServiceUnavailable()

        def run() -> T:
            with buffer.store.lock:
                try:
                    buffer._flush_locked()
                except (OSError, sqlite3.Error) as exc:
                    # what waited is lost (as when the writer fails); the read serves what
                    # is stored
                    buffer.write_failed(exc)
                return read(buffer.store)

        try:
            return await asyncio.to_thread(run)
        except (OSError, sqlite3.Error) as exc:
            raise admin_storage_unavailable("the trace buffer", exc) from None

    async def _list(self, request: web.Request) -> web.StreamResponse:
        try:
            query = _trace_query(request.query)
        except BadQueryError as exc:
            return admin_error(400, "invalid_argument", str(exc))
        if (off := self._off()) is not None:
            return off
        traces = await self._read(lambda store: store.list_traces(query))
        return web.json_response({"traces": traces})

    @private_read
    async def _trace(self, request: web.Request) -> web.StreamResponse:
        trace_id, error = self._trace_id(request.match_info["trace_id"], "trace id")
        if error is not None:
            return error
        parts = await self._read(lambda store: store.batches(trace_id))
        if not parts:
            return _not_found(trace_id)
        return await _answer_off_loop(lambda: to_otlp_json(assemble(parts, trace_id)))

    async def _spans(self, request: web.Request) -> web.StreamResponse:
        trace_id, error = self._trace_id(request.match_info["trace_id"], "trace id")
        if error is not None:
            return error

        def read(store: TraceStore) -> tuple[dict[str, Any] | None, list[bytes]]:
            return store.trace_summary(trace_id), store.batches(trace_id)

        summary, parts = await self._read(read)
        if summary is None or not parts:
            return _not_found(trace_id)
        return await _answer_off_loop(
            lambda: {"trace": summary, "spans": flatten(span_tree(assemble(parts, trace_id)))}
        )

    @private_read
    async def _cassette(self, request: web.Request) -> web.StreamResponse:
        trace_id, error = self._trace_id(request.match_info["trace_id"], "trace id")
        if error is not None:
            return error

        def read(store: TraceStore) -> Cassette | None:
            parts = store.batches(trace_id)
            exchanges = store.exchanges(trace_id)
            if not parts and not exchanges:
                return None
            patterns = list(self.engine.config.redaction.patterns)
            return Cassette(trace_id, exchanges, to_otlp_json(assemble(parts, trace_id)), patterns)

        cassette = await self._read(read)
        if cassette is None:
            return _not_found(trace_id)
        return await _answer_off_loop(cassette.to_json)

    @private_read
    async def _diff(self, request: web.Request) -> web.StreamResponse:
        ids = []
        for name in ("a", "b"):
            trace_id, error = self._trace_id(request.query.get(name, ""), f"query {name}")
            if error is not None:
                return error
            ids.append(trace_id)

        def read(store: TraceStore) -> list[tuple[list[bytes], list[Exchange]]]:
            return [(store.batches(trace_id), store.exchanges(trace_id)) for trace_id in ids]

        (a_parts, a_calls), (b_parts, b_calls) = await self._read(read)
        for trace_id, parts in zip(ids, (a_parts, b_parts), strict=False):
            if not parts:
                return _not_found(trace_id)

        def diff() -> dict[str, Any]:
            changes = diff_traces(
                span_tree(assemble(a_parts, ids[0])),
                span_tree(assemble(b_parts, ids[1])),
                calls_a=a_calls,
                calls_b=b_calls,
            )
            return {
                "a": ids[0],
                "b": ids[1],
                "changes": [c.to_json() for c in changes],
                "summary": [str(c) for c in changes],
            }

        return await _answer_off_loop(diff)

    @private_read
    async def _sessions(self, request: web.Request) -> web.StreamResponse:
        sessions = self.engine.sessions.sessions.values()
        return web.json_response({"sessions": [s.to_json() for s in sessions]})

    async def _open(self, request: web.Request) -> web.StreamResponse:
        body = await json_body(request)
        if not isinstance(body, dict):
            return admin_error(400, "invalid_argument", "the body must be a JSON object")
        unknown = set(body) - {"trace_id", "prefix", "timing", "passthrough"}
        if unknown:
            return admin_error(
                400, "invalid_argument", f"unknown field(s): {', '.join(sorted(unknown))}"
            )
        trace_id, error = self._trace_id(str(body.get("trace_id", "")), "trace_id")
        if error is not None:
            return error
        prefix = body.get("prefix", "")
        if not isinstance(prefix, str) or (prefix and not prefix.startswith("/")):
            return admin_error(400, "invalid_argument", "prefix: a route prefix like /openai")
        for flag in ("timing", "passthrough"):
            if not isinstance(body.get(flag, False), bool):
                return admin_error(400, "invalid_argument", f"{flag}: true or false")
        exchanges = await self._read(lambda store: store.exchanges(trace_id))
        if not exchanges:
            return admin_error(
                404,
                "not_found",
                f"trace {trace_id} has no captured calls to replay (is replay.capture on?)",
            )
        engine = self.engine
        session = ReplaySession(
            id="",
            trace_id=trace_id,
            script=ReplayScript(exchanges, engine.redactor),
            prefix=prefix,
            timing=bool(body.get("timing", False)),
            passthrough=bool(body.get("passthrough", False)),
        )
        try:
            engine.sessions.open(session)
        except ValueError as exc:
            return admin_error(409, "conflict", str(exc))
        engine.metrics.sessions.set(len(engine.sessions.sessions))
        return web.json_response(session.to_json(), status=201)

    async def _close(self, request: web.Request) -> web.StreamResponse:
        session_id = request.match_info["session_id"]
        if not self.engine.sessions.close(session_id):
            return admin_error(404, "not_found", f"no replay session {session_id!r}")
        self.engine.mismatches.forget(session_id)
        self.engine.metrics.sessions.set(len(self.engine.sessions.sessions))
        return web.json_response({"closed": session_id})

    def _off(self) -> web.Response | None:
        if self.engine.buffer is None:
            return admin_error(
                503, "unavailable", "the trace buffer is off (replay.enabled: false)"
            )
        return None

    def _trace_id(self, value: str, where: str) -> tuple[str, web.Response | None]:
        value = value.strip().lower()
        if not _TRACE_ID.match(value):
            return value, admin_error(
                400, "invalid_argument", f"{where}: {value!r} is not a trace id (32 hex digits)"
            )
        return value, self._off()


async def _answer_off_loop(build: Callable[[], Any]) -> web.Response:
    """The JSON answer ``build`` makes, built and serialised on a worker thread: assembling,
    walking and diffing a trace of thousands of spans is pure work that would hold the event
    loop (and ``/healthz``) for seconds."""

    def run() -> bytes:
        return json.dumps(build()).encode()

    return web.Response(body=await asyncio.to_thread(run), content_type="application/json")


def _not_found(trace_id: str) -> web.Response:
    return admin_error(404, "not_found", f"trace {trace_id} is not in the trace buffer")


def _trace_query(query: Any) -> TraceQuery:
    def seconds(name: str) -> float | None:
        return query_number(query, name, None, minimum=0, maximum=MAX_EPOCH_SECONDS)

    status = query.get("status", "")
    if status not in ("", "error", "any"):
        raise BadQueryError(f"status: {status!r} (use status=error)")
    kind = query.get("kind", "")
    if kind and kind not in KINDS:
        raise BadQueryError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    limit = query_number(query, "limit", 100, minimum=1, maximum=MAX_LIMIT, integer=True)
    return TraceQuery(
        agent=query.get("agent", ""),
        since=seconds("since"),
        until=seconds("until"),
        errors_only=status == "error",
        kind=kind,
        limit=limit,
    )
