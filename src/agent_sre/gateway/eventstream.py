"""AWS event-stream framing (``application/vnd.amazon.eventstream``), read for usage in flight.

A message is a 12-byte prelude (total length, headers length, the prelude's CRC32), typed
headers, a payload and the message's CRC32, all big-endian. :class:`EventStreamReader` takes
the bytes as they come and returns whole messages; it never raises: the first thing that is
not a well-formed message (a CRC that does not match, lengths that do not add up, a header
of unknown type) stops the reading for the rest of the stream (the bytes still pass on:
the client's own parser decides what the stream is worth). A message longer than
:data:`MAX_MESSAGE_BYTES` is passed over unread, so the reader holds at most one message.

# hot path: per chunk of a streamed Bedrock call. :class:`EventStreamTap` forwards every chunk
untouched and hands each event's JSON payload to the provider (``Provider.on_event`` with the
``:event-type`` as its name).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent_sre.gateway.plan import ResponseFacts, UsageError
from agent_sre.jsonbody import PROXY_MAX_DEPTH, read_json

if TYPE_CHECKING:
    from agent_sre.gateway.plan import CallPlan
    from agent_sre.gateway.providers.base import Provider

CONTENT_TYPE = "application/vnd.amazon.eventstream"
PRELUDE = 12
MIN_MESSAGE = 16
MAX_MESSAGE_BYTES = 1024 * 1024
"""The longest message read (Bedrock's are a few hundred bytes); a longer one passes unread."""
_U32 = struct.Struct(">I")
_PRELUDE = struct.Struct(">III")
_FIXED = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}
"""Header value types of a fixed size (bool true/false, byte, short, int, long, timestamp,
uuid); 6 (bytes) and 7 (string) carry a 2-byte length."""

HeaderValue = bool | int | bytes | str


@dataclass
class Message:
    headers: dict[str, HeaderValue]
    payload: bytes


class EventStreamError(ValueError):
    """What made a stream unreadable (the reader stops there)."""


def parse_headers(data: bytes) -> dict[str, HeaderValue]:
    """The headers block of a message; raises :class:`EventStreamError`."""
    headers: dict[str, HeaderValue] = {}
    at, end = 0, len(data)
    while at < end:
        size = data[at]
        at += 1
        if size == 0 or at + size + 1 > end:
            raise EventStreamError("header name out of bounds")
        name = data[at : at + size].decode("utf-8", "replace")
        at += size
        kind = data[at]
        at += 1
        value: HeaderValue
        if kind in (6, 7):
            if at + 2 > end:
                raise EventStreamError("header length out of bounds")
            length = int.from_bytes(data[at : at + 2], "big")
            at += 2
            if at + length > end:
                raise EventStreamError("header value out of bounds")
            raw = data[at : at + length]
            value = raw.decode("utf-8", "replace") if kind == 7 else raw
            at += length
        elif kind in _FIXED:
            length = _FIXED[kind]
            if at + length > end:
                raise EventStreamError("header value out of bounds")
            if kind <= 1:
                value = kind == 0
            elif kind == 9:  # a UUID: its 16 bytes
                value = bytes(data[at : at + length])
            else:
                value = int.from_bytes(data[at : at + length], "big", signed=True)
            at += length
        else:
            raise EventStreamError(f"header type {kind} unknown")
        headers[name] = value
    return headers


class EventStreamReader:
    """Whole messages out of a stream's chunks (bounded; never raises)."""

    def __init__(self, max_message: int = MAX_MESSAGE_BYTES) -> None:
        self._buffer = bytearray()
        self._max = max_message
        self._skip = 0
        """Bytes of an oversized message still to pass over."""
        self.broken = ""
        """Why the reading stopped (empty while it goes on)."""
        self.oversized = 0
        self.messages = 0

    def feed(self, chunk: bytes) -> list[Message]:
        if self.broken:
            return []
        if self._skip:
            if len(chunk) <= self._skip:
                self._skip -= len(chunk)
                return []
            chunk = chunk[self._skip :]
            self._skip = 0
        buffer = self._buffer
        buffer += chunk
        out: list[Message] = []
        at = 0
        try:
            while len(buffer) - at >= PRELUDE:
                total, header_size, prelude_crc = _PRELUDE.unpack_from(buffer, at)
                if zlib.crc32(buffer[at : at + 8]) != prelude_crc:
                    raise EventStreamError("prelude CRC does not match")
                if total < MIN_MESSAGE or header_size > total - MIN_MESSAGE:
                    raise EventStreamError("message lengths do not add up")
                if total > self._max:
                    self.oversized += 1
                    have = len(buffer) - at
                    if have >= total:
                        at += total
                        continue
                    self._skip = total - have
                    at = len(buffer)
                    break
                if len(buffer) - at < total:
                    break
                message = bytes(buffer[at : at + total])
                (crc,) = _U32.unpack_from(message, total - 4)
                if zlib.crc32(message[: total - 4]) != crc:
                    raise EventStreamError("message CRC does not match")
                headers = parse_headers(message[PRELUDE : PRELUDE + header_size])
                out.append(Message(headers, message[PRELUDE + header_size : total - 4]))
                self.messages += 1
                at += total
        except EventStreamError as exc:
            self.broken = str(exc)
            buffer.clear()
            return out
        if at:
            del buffer[:at]
        return out


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One message with string headers (what a fault or a test sends)."""
    block = bytearray()
    for name, value in headers.items():
        raw_name, raw = name.encode(), value.encode()
        block += bytes([len(raw_name)]) + raw_name + b"\x07" + len(raw).to_bytes(2, "big") + raw
    total = PRELUDE + len(block) + len(payload) + 4
    prelude = struct.pack(">II", total, len(block))
    head = prelude + _U32.pack(zlib.crc32(prelude)) + bytes(block) + payload
    return head + _U32.pack(zlib.crc32(head))


class EventStreamTap:
    """Feeds on an event stream's bytes (passed on untouched); :attr:`facts` fills in."""

    def __init__(
        self, plan: CallPlan, provider: Provider, max_message: int = MAX_MESSAGE_BYTES
    ) -> None:
        self._plan = plan
        self._provider = provider
        self._reader = EventStreamReader(max_message)
        self.facts = ResponseFacts()
        self.events = 0

    @property
    def oversized(self) -> int:
        return self._reader.oversized

    @property
    def broken(self) -> str:
        return self._reader.broken

    def feed(self, chunk: bytes) -> bytes:
        for message in self._reader.feed(chunk):
            self.events += 1
            self._on_message(message)
        return chunk

    def finish(self) -> bytes:
        return b""

    def _on_message(self, message: Message) -> None:
        headers = message.headers
        if headers.get(":message-type") != "event":
            return
        name = headers.get(":event-type")
        try:
            data = read_json(message.payload, max_depth=PROXY_MAX_DEPTH)
        except ValueError:
            return
        if not isinstance(data, dict) or not isinstance(name, str):
            return
        try:
            self._provider.on_event(self._plan, self.facts, name.encode(), data, b"")
        except UsageError as exc:
            self.facts.usage_problem = str(exc)
        except Exception:  # odd but parseable: this event tells us nothing
            pass
