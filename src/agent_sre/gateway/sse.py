"""A tap on a server-sent event stream: forwards bytes as they come and reads usage.

# hot path: per chunk of every streamed call. The tap never holds more than one partial
event; chunks pass through untouched unless the proxy must take out the usage chunk it
asked for itself (OpenAI ``include_usage``), in which case whole events are forwarded.
What an event means is the provider's business (:meth:`Provider.on_event`).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from agent_sre.gateway.plan import ResponseFacts, UsageError
from agent_sre.gateway.providers import PROVIDERS

if TYPE_CHECKING:
    from agent_sre.gateway.plan import CallPlan

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


class StreamTap:
    """Feeds on a stream's bytes; :attr:`facts` fills in as events pass."""

    def __init__(self, plan: CallPlan) -> None:
        self._plan = plan
        self._provider = PROVIDERS[plan.api]
        self._rewrite = plan.strip_usage
        self._buffer = b""
        self.facts = ResponseFacts()
        self.events = 0

    def feed(self, chunk: bytes) -> bytes:
        """Returns the bytes to send to the client now."""
        data = self._buffer + chunk if self._buffer else chunk
        end = 0
        out = []
        for match in _EVENT_END.finditer(data):
            event = data[end : match.end()]
            end = match.end()
            keep = self._on_event(event)
            if self._rewrite:
                out.append(keep)
        self._buffer = data[end:]
        if not self._rewrite:
            return chunk
        return b"".join(out)

    def finish(self) -> bytes:
        """The bytes of an unterminated last event (a stream cut short)."""
        rest, self._buffer = self._buffer, b""
        if rest.strip():
            self._on_event(rest)
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
            data = json.loads(raw)
        except (ValueError, RecursionError):
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
