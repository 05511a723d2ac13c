"""Redaction over a reassembled stream.

An answer streamed as server-sent events (or NDJSON lines) carries its text a few characters
an event: ``{"delta": {"content": "sk-pr"}}``, then ``{"delta": {"content": "oj-..."}}``.
No rule finds a key in either event, nor in their raw bytes joined (JSON framing sits
between the pieces). So the stream is reassembled as its reader would: the string at each
JSON path (``choices.0.delta.content``, ``delta.text``, ``delta.partial_json``...) is joined
over the events in order, the rules run over that text, and each piece of a credential is
taken out of the event that carried it (the first piece becomes ``[REDACTED]``). Only the
events that change are written again; each event is then redacted on its own bytes too, and
moved whole into the chunk its last byte arrived in, so the stream keeps its timing.
"""

from __future__ import annotations

import functools
import json
import re
from typing import TYPE_CHECKING, Any

from agent_sre.jsonbody import PROXY_MAX_DEPTH, read_json
from agent_sre.replay.redaction import MARK, TEXT_MARK, credential_name

if TYPE_CHECKING:
    from agent_sre.replay.redaction import Redactor

Chunks = list[tuple[float, bytes]]

_SSE_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE_END = re.compile(rb"\n")
_LINES = ("application/x-ndjson", "application/ndjson", "application/jsonl",
          "application/json-seq", "application/jsonlines")  # fmt: skip


def redact_chunks(chunks: Chunks, redactor: Redactor, content_type: str = "") -> Chunks:
    """The chunks of an answer with every credential taken out, one split across chunks or
    across the events of a stream included.

    Args:
        chunks: ``(offset seconds, bytes)`` as sent to the client.
        redactor: the rules.
        content_type: the answer's media type (``text/event-stream`` and NDJSON are
            reassembled event by event).
    """
    if not chunks:
        return chunks
    media = _media(content_type)
    if media == "text/event-stream":
        return _by_records(chunks, redactor, _SSE_END, sse=True)
    if media in _LINES:
        return _by_records(chunks, redactor, _LINE_END, sse=False)
    return _raw(chunks, redactor)


@functools.lru_cache(maxsize=64)  # a few media types, asked once a captured call
def reassembled(content_type: str) -> bool:
    """Whether :func:`redact_chunks` reads an answer of this media type event by event (its
    raw bytes alone cannot tell that it holds no credential)."""
    media = _media(content_type)
    return media == "text/event-stream" or media in _LINES


def _media(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def _raw(chunks: Chunks, redactor: Redactor) -> Chunks:
    """Each chunk redacted; when redacting the whole answer finds more (a secret cut by a
    chunk boundary), the answer is kept as one chunk at the first one's time."""
    redact = redactor.redact
    per_chunk = [(at, redact(chunk)) for at, chunk in chunks]
    if len(chunks) < 2:
        return per_chunk
    whole = b"".join(chunk for _, chunk in chunks)
    if not redactor.finds(whole):
        return per_chunk
    redacted_whole = redact(whole)
    if redacted_whole == b"".join(chunk for _, chunk in per_chunk):
        return per_chunk
    return [(chunks[0][0], redacted_whole)]


def _by_records(chunks: Chunks, redactor: Redactor, end: re.Pattern[bytes], sse: bool) -> Chunks:
    whole = b"".join(chunk for _, chunk in chunks)
    bounds: list[tuple[int, int]] = []
    at = 0
    for match in end.finditer(whole):
        bounds.append((at, match.end()))
        at = match.end()
    if at < len(whole):
        bounds.append((at, len(whole)))  # an unfinished last event
    records = [whole[start:stop] for start, stop in bounds]
    redacted = _redact_records(records, redactor, sse)
    if redacted == records:
        return chunks
    # each event goes whole into the chunk that held its last byte
    out: list[list[bytes]] = [[] for _ in chunks]
    chunk_ends = []
    total = 0
    for _, chunk in chunks:
        total += len(chunk)
        chunk_ends.append(total)
    i = 0
    for (_, stop), data in zip(bounds, redacted, strict=True):
        while chunk_ends[i] < stop:
            i += 1
        out[i].append(data)
    return [(chunks[n][0], b"".join(parts)) for n, parts in enumerate(out) if parts]


class _Payload:
    """One JSON (or text) payload of an event: where it sits and its parsed value."""

    __slots__ = ("record", "line", "head", "tail", "value", "changed")

    def __init__(self, record: int, line: int, head: bytes, tail: bytes, value: Any) -> None:
        self.record = record
        self.line = line
        self.head = head
        self.tail = tail
        self.value = value
        self.changed = False

    def encode(self) -> bytes:
        value = self.value
        if isinstance(value, _Text):
            body = value.text.encode("utf-8", "replace")
        else:
            body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        return self.head + body + self.tail


class _Text:
    """A payload that is not JSON, as a leaf of its own."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _redact_records(records: list[bytes], redactor: Redactor, sse: bool) -> list[bytes]:
    lines = [record.split(b"\n") for record in records]
    payloads: list[_Payload] = []
    streams: dict[tuple[Any, ...], list[tuple[_Payload, Any, Any]]] = {}
    for r, record_lines in enumerate(lines):
        for n, line in enumerate(record_lines):
            payload = _payload(r, n, line, sse)
            if payload is None:
                continue
            payloads.append(payload)
            _leaves(payload, streams)
    for leaves in streams.values():
        _redact_stream(leaves, redactor)
    changed = set()
    for payload in payloads:
        if payload.changed:
            lines[payload.record][payload.line] = payload.encode()
            changed.add(payload.record)
    out = [
        b"\n".join(record_lines) if r in changed else records[r]
        for r, record_lines in enumerate(lines)
    ]
    if not redactor.finds(b"".join(out)):
        return out
    return [redactor.redact(record) if redactor.finds(record) else record for record in out]


def _payload(record: int, line: int, data: bytes, sse: bool) -> _Payload | None:
    tail = b"\r" if data.endswith(b"\r") else b""
    body = data[: len(data) - len(tail)]
    if sse:
        if not body.startswith(b"data:"):
            return None
        cut = 6 if body[5:6] == b" " else 5
        head, body = body[:cut], body[cut:]
    else:
        head = b""
    if not body:
        return None
    value: Any
    if body[:1] in (b"{", b"["):
        try:
            value = read_json(body, max_depth=PROXY_MAX_DEPTH)
        except ValueError:
            value = _Text(body.decode("utf-8", "replace"))
    else:
        value = _Text(body.decode("utf-8", "replace"))
    return _Payload(record, line, head, tail, value)


def _leaves(
    payload: _Payload, streams: dict[tuple[Any, ...], list[tuple[_Payload, Any, Any]]]
) -> None:
    """Adds each string of ``payload`` to the stream of its JSON path; a value under a
    credential's name is replaced at once."""
    value = payload.value
    if isinstance(value, _Text):
        streams.setdefault(("",), []).append((payload, value, "text"))
        return
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, ())]
    while stack:
        container, path = stack.pop()
        items = container.items() if isinstance(container, dict) else enumerate(container)
        for key, item in items:
            if isinstance(item, str):
                if isinstance(key, str) and item and credential_name(key):
                    container[key] = TEXT_MARK
                    payload.changed = True
                else:
                    streams.setdefault((*path, key), []).append((payload, container, key))
            elif isinstance(item, dict | list):
                stack.append((item, (*path, key)))
            elif isinstance(key, str) and item is not None and credential_name(key):
                container[key] = TEXT_MARK
                payload.changed = True


def _redact_stream(leaves: list[tuple[_Payload, Any, Any]], redactor: Redactor) -> None:
    """Runs the rules over the strings of one path joined in order; each piece of a match
    is taken out of its own event."""
    pieces = [_get(container, key).encode("utf-8", "surrogatepass") for _, container, key in leaves]
    joined = b"".join(pieces)
    if not redactor.finds(joined):
        return
    ranges = redactor.ranges(joined)
    if not ranges:
        return
    offset = 0
    for (payload, container, key), piece in zip(leaves, pieces, strict=True):
        cut = _cut(piece, offset, ranges)
        offset += len(piece)
        if cut is not None:
            _set(container, key, cut.decode("utf-8", "replace"))
            payload.changed = True


def _cut(piece: bytes, offset: int, ranges: list[tuple[int, int]]) -> bytes | None:
    """``piece`` (at ``offset`` of the joined text) without the parts in ``ranges``; a range
    that starts in it leaves ``[REDACTED]`` where it starts. None when none touches it."""
    end = offset + len(piece)
    out: list[bytes] = []
    at = offset
    touched = False
    for start, stop in ranges:
        if stop <= offset or start >= end:
            continue
        touched = True
        out.append(piece[at - offset : max(start, offset) - offset])
        if start >= offset:
            out.append(MARK)
        at = min(stop, end)
    if not touched:
        return None
    out.append(piece[at - offset :])
    return b"".join(out)


def _get(container: Any, key: Any) -> str:
    return container.text if isinstance(container, _Text) else str(container[key])


def _set(container: Any, key: Any, value: str) -> None:
    if isinstance(container, _Text):
        container.text = value
    else:
        container[key] = value
