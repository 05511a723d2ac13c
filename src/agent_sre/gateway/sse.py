"""A tap on a server-sent event stream: forwards bytes as they come and reads usage.

# hot path: per chunk of every streamed call. The tap never holds more than one partial
event; chunks pass through untouched unless the proxy must take out the usage chunk it
asked for itself (OpenAI ``include_usage``), in which case whole events are forwarded.
What an event means is the provider's business (:meth:`Provider.on_event`).

Linear in the stream's size: each byte is scanned for an event's end once (a chunk is
searched from just before where the last search ended), and a partial event longer than
:data:`MAX_EVENT_BYTES` is passed on unread up to its end instead of being held.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from agent_sre.gateway.eventstream import EventStreamTap
from agent_sre.gateway.plan import ResponseFacts, UsageError
from agent_sre.gateway.providers import PROVIDERS
from agent_sre.gateway.providers.base import SSE
from agent_sre.jsonbody import PROXY_MAX_DEPTH, read_json

if TYPE_CHECKING:
    from agent_sre.gateway.plan import CallPlan

EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
"""The end of a server-sent event (a blank line, with any of the three line ends)."""
_OVERLAP = 3
"""An event's end is at most 4 bytes: a search starts this many bytes back."""
MAX_EVENT_BYTES = 1024 * 1024
"""The longest event read for usage (real ones are a few KiB); a longer one passes unread."""


class StreamTap:
    """Feeds on a stream's bytes; :attr:`facts` fills in as events pass."""

    def __init__(self, plan: CallPlan, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._plan = plan
        self._provider = PROVIDERS[plan.api]
        self._rewrite = plan.strip_usage
        self._max = max_event_bytes
        self._buffer = bytearray()
        """The partial event: bytes not yet forwarded when rewriting."""
        self._skipping = False
        """In an event too long to read: pass it on up to its end."""
        self.facts = ResponseFacts()
        self.events = 0
        self.oversized = 0
        """Events passed on unread because they outgrew :data:`MAX_EVENT_BYTES`."""

    def feed(self, chunk: bytes) -> bytes:
        """Returns the bytes to send to the client now."""
        buffer = self._buffer
        scan = max(len(buffer) - _OVERLAP, 0)
        buffer += chunk
        out: list[bytes] = []
        end = 0
        for match in EVENT_END.finditer(buffer, scan):
            event = bytes(buffer[end : match.end()])
            end = match.end()
            if self._skipping:  # the end of an oversized event: passed on as it is
                self._skipping = False
                keep = event
            else:
                keep = self._on_event(event)
            if self._rewrite:
                out.append(keep)
        if end:
            del buffer[:end]
        if len(buffer) > self._max:
            if not self._skipping:
                self._skipping = True
                self.oversized += 1
            # keep only what an event's end could start in; the rest goes on unread
            cut = len(buffer) - _OVERLAP
            if self._rewrite:
                out.append(bytes(buffer[:cut]))
            del buffer[:cut]
        if not self._rewrite:
            return chunk
        return b"".join(out)

    def finish(self) -> bytes:
        """The bytes of an unterminated last event (a stream cut short)."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        if rest.strip() and not self._skipping:
            self._on_event(rest)
        self._skipping = False
        return rest if self._rewrite else b""

    def _on_event(self, event: bytes) -> bytes:
        name = b""
        payload: list[bytes] = []
        for line in event.splitlines():
            if line.startswith(b"data:"):
                payload.append(line[5:].lstrip(b" "))
            elif line.startswith(b"event:"):
                name = line[6:].strip()
        if not payload:
            return event
        self.events += 1
        raw = b"\n".join(payload)
        if raw == b"[DONE]":
            return event
        try:
            data = read_json(raw, max_depth=PROXY_MAX_DEPTH)
        except ValueError:
            return event
        if not isinstance(data, dict):
            return event
        try:
            return self._provider.on_event(self._plan, self.facts, name, data, event)
        except UsageError as exc:
            self.facts.usage_problem = str(exc)
        except Exception:  # odd but parseable: this event tells us nothing
            pass
        return event


def stream_tap(plan: CallPlan, content_type: str) -> StreamTap | EventStreamTap | None:
    """The tap reading a streamed answer of ``content_type`` for usage: server-sent events,
    or the provider's own stream framing; None for anything else (passed through unread)."""
    if content_type == SSE:
        return StreamTap(plan)
    provider = PROVIDERS[plan.api]
    if content_type == provider.stream_type:
        return EventStreamTap(plan, provider)
    return None
