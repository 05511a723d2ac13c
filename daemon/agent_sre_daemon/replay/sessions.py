"""Replay sessions: recorded calls answered to an agent instead of the upstream.

A session is bound to a route prefix (every call under it is answered from the recording)
or to the ``X-Agent-SRE-Replay: <session key>`` header the agent sends. A call that matches
no recorded one is answered with a ``replay_mismatch`` error naming the nearest recorded
request and the difference; it never reaches the upstream unless the session was opened
with ``passthrough``.

A session has a public ``id`` (listed, in signals and spans, closed by it) and a secret
``key``, the header's value: whoever holds the key has calls answered from the recording,
so it is shown only to whoever opened the session and to readers with the admin token.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from agent_sre.gateway.providers import facts_from_json
from agent_sre.gateway.sse import stream_tap
from agent_sre.replay.script import Mismatch, ReplayScript

if TYPE_CHECKING:
    from agent_sre.gateway.plan import CallPlan, ResponseFacts
    from agent_sre.replay.exchange import Exchange

HEADER = "X-Agent-SRE-Replay"


@dataclass
class ReplaySession:
    id: str
    trace_id: str
    script: ReplayScript
    prefix: str = ""
    """Route prefix the session answers (empty: only calls naming it in the header)."""
    timing: bool = False
    """Stream chunks with their recorded gaps."""
    passthrough: bool = False
    """A call with no recorded match goes to the upstream instead of failing."""
    answered: int = 0
    mismatches: int = 0
    key: str = ""
    """The header's value that binds a call to this session (secret)."""
    last_mismatch: str = ""
    """Why the last call refused was refused (the nearest recorded request, the difference)."""

    def to_json(self) -> dict[str, Any]:
        """The session as the token-guarded admin API shows it (the header value included)."""
        return {
            "id": self.id,
            "trace_id": self.trace_id,
            "prefix": self.prefix,
            "header": f"{HEADER}: {self.key}",
            "last_mismatch": self.last_mismatch,
            "timing": self.timing,
            "passthrough": self.passthrough,
            "calls": len(self.script.exchanges),
            "answered": self.answered,
            "remaining": self.script.remaining,
            "mismatches": self.mismatches,
        }


class SessionTable:
    """The open sessions, by id, at most ``limit`` of them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sessions: dict[str, ReplaySession] = {}
        self._by_key: dict[str, ReplaySession] = {}
        self._by_prefix: dict[str, ReplaySession] = {}
        """Sessions bound to a route prefix (without its trailing slashes), the first opened
        one of each: a call finds its session, or none, with one lookup."""

    def open(self, session: ReplaySession) -> ReplaySession:
        """Adds ``session`` under a fresh id and key.

        Raises:
            ValueError: ``limit`` sessions are open, or another one holds the prefix.
        """
        if len(self.sessions) >= self.limit:
            raise ValueError(
                f"{self.limit} replay sessions are open (replay.max_sessions); close one first"
            )
        if session.prefix and any(s.prefix == session.prefix for s in self.sessions.values()):
            raise ValueError(f"another replay session is bound to prefix {session.prefix}")
        session.id = secrets.token_hex(8)
        session.key = secrets.token_urlsafe(24)
        self.sessions[session.id] = session
        self._by_key[session.key] = session
        self._index_prefixes()
        return session

    def close(self, session_id: str) -> bool:
        session = self.sessions.pop(session_id, None)
        if session is None:
            return False
        self._by_key.pop(session.key, None)
        self._index_prefixes()
        return True

    def _index_prefixes(self) -> None:
        by_prefix: dict[str, ReplaySession] = {}
        for session in self.sessions.values():
            if session.prefix:
                by_prefix.setdefault(session.prefix.rstrip("/"), session)
        self._by_prefix = by_prefix

    def bound(self, prefix: str, header: str | None) -> ReplaySession | str | None:
        """The session for a call: by its header, else by its route prefix; a header naming
        no session is an error message (the call must not silently go upstream)."""
        if header:
            found = self._by_key.get(header.strip())
            return found if found is not None else f"no replay session {header.strip()!r}"
        by_prefix = self._by_prefix
        return by_prefix.get(prefix.rstrip("/")) if by_prefix else None


def match(session: ReplaySession, method: str, full_path: str, body: bytes) -> Exchange | Mismatch:
    answer = session.script.answer(method, full_path, body)
    if isinstance(answer, Mismatch):
        session.mismatches += 1
    else:
        session.answered += 1
    return answer


async def write_answer(
    request: web.Request, exchange: Exchange, timing: bool, plan: CallPlan | None = None
) -> tuple[web.StreamResponse, ResponseFacts | None]:
    """Answers ``request`` with the recorded response (re-chunked as recorded; with
    ``timing``, with the recorded gaps between chunks) and what it told (usage, model)."""
    content_type = exchange.content_type or "application/octet-stream"
    facts: ResponseFacts | None = None
    if not exchange.streamed:
        body = exchange.body
        if plan is not None and plan.operation is not None and content_type.endswith("json"):
            facts = facts_from_json(plan, body)
        response = web.Response(status=exchange.status, body=body)
        response.content_type = content_type
        return response, facts
    stream = web.StreamResponse(status=exchange.status)
    stream.content_type = content_type
    tap = stream_tap(plan, content_type) if plan is not None else None
    await stream.prepare(request)
    previous = 0.0
    for at, chunk in exchange.chunks:
        if timing and at > previous:
            await asyncio.sleep(at - previous)
        previous = max(previous, at)
        if tap is not None:
            tap.feed(chunk)
        await stream.write(chunk)
    await stream.write_eof()
    if tap is not None:
        tap.finish()
        facts = tap.facts
    return stream, facts
