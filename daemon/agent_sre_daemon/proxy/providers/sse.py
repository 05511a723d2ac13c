"""A tap on a server-sent event stream: forwards bytes as they come and reads usage.

# hot path: per chunk of every streamed call. The tap never holds more than one partial
event; chunks pass through untouched unless the proxy must take out the usage chunk it
asked for itself (OpenAI ``include_usage``), in which case whole events are forwarded.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from agent_sre_daemon.proxy.providers.plans import (
    ResponseFacts,
    mcp_error,
    response_id_of,
    usage_from_anthropic,
    usage_from_openai,
)

if TYPE_CHECKING:
    from agent_sre_daemon.proxy.providers.plans import CallPlan

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_USAGE_NULL = (b',"usage":null', b', "usage": null')


class StreamTap:
    """Feeds on a stream's bytes; :attr:`facts` fills in as events pass."""

    def __init__(self, plan: CallPlan) -> None:
        self._plan = plan
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
            if self._plan.strip_usage:
                out.append(keep)
        self._buffer = data[end:]
        if not self._plan.strip_usage:
            return chunk
        return b"".join(out)

    def finish(self) -> bytes:
        """The bytes of an unterminated last event (a stream cut short)."""
        rest, self._buffer = self._buffer, b""
        if rest.strip():
            self._on_event(rest)
        return rest if self._plan.strip_usage else b""

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
        except ValueError:
            return event
        if not isinstance(data, dict):
            return event
        api = self._plan.api
        if api == "anthropic":
            self._anthropic(data)
        elif api == "openai":
            if self._plan.is_responses_api:
                self._responses(name, data)
            elif self._openai(data) and self._plan.strip_usage:
                return b""
        elif api == "mcp":
            error = mcp_error(data)
            if error is not None:
                self.facts.tool_error = error
        if self._plan.strip_usage:
            for needle in _USAGE_NULL:
                event = event.replace(needle, b"")
        return event

    def _openai(self, data: dict[str, Any]) -> bool:
        """Reads a chat/completions chunk; True when it is the usage-only final chunk."""
        facts = self.facts
        if not facts.response_model and data.get("model"):
            facts.response_model = str(data["model"])
        if not facts.response_id:
            facts.response_id = response_id_of(data)
        choices = data.get("choices")
        usage = data.get("usage")
        if usage:
            facts.usage = usage_from_openai(usage)
            facts.usage_final = True
        if choices:
            for choice in choices:
                if isinstance(choice, dict):
                    delta = choice.get("delta") or {}
                    text = delta.get("content") if isinstance(delta, dict) else None
                    text = text if text is not None else choice.get("text")
                    if text:
                        facts.output_chars += len(text)
                    tools = delta.get("tool_calls") if isinstance(delta, dict) else None
                    if tools:
                        facts.output_chars += len(json.dumps(tools))
            return False
        return bool(usage) and choices == []

    def _responses(self, name: bytes, data: dict[str, Any]) -> None:
        kind = data.get("type") or name.decode(errors="replace")
        facts = self.facts
        if kind == "response.output_text.delta" or str(kind).endswith(".delta"):
            delta = data.get("delta")
            if isinstance(delta, str):
                facts.output_chars += len(delta)
            return
        response = data.get("response")
        if isinstance(response, dict):
            if not facts.response_id:
                facts.response_id = response_id_of(response)
            if response.get("model"):
                facts.response_model = str(response["model"])
            if response.get("usage"):
                facts.usage = usage_from_openai(response["usage"])
                facts.usage_final = True

    def _anthropic(self, data: dict[str, Any]) -> None:
        kind = data.get("type")
        facts = self.facts
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            text = delta.get("text") or delta.get("partial_json") or delta.get("thinking")
            if isinstance(text, str):
                facts.output_chars += len(text)
        elif kind == "message_start":
            message = data.get("message") or {}
            facts.response_model = str(message.get("model") or "")
            facts.response_id = response_id_of(message) if isinstance(message, dict) else ""
            facts.usage = usage_from_anthropic(message.get("usage"))
        elif kind == "message_delta":
            facts.usage = usage_from_anthropic(data.get("usage"), facts.usage)
            facts.usage_final = facts.usage is not None
