"""An enricher's handle on one span of a request forwarded as its wire bytes.

The native span pass (:meth:`~agent_sre.tracing.batch.TraceBatchProcessor.process_wire`)
hands enrichers a :class:`WireSpan` instead of a decoded protobuf: attributes appended with
:func:`append_attribute` (pricing's ``agent_sre.cost_usd``) are encoded straight into the
forwarded bytes; any other use (reading or changing the span: linking a call) decodes the
span once, as a protobuf ``Span`` holding what was appended so far, and forwards that.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span

if TYPE_CHECKING:
    from collections.abc import Callable

    from opentelemetry.proto.common.v1.common_pb2 import KeyValue

    from agent_sre.tracing.view import AttrValue

_ATTRIBUTES = 9  # Span.attributes


class WireSpan:
    """The span at ``body[offset:offset + length]``, with ``suffix`` (encoded attributes)
    to append; attribute access other than its own goes to the decoded span."""

    __slots__ = ("_body", "_offset", "_length", "_message", "_suffix")

    def __init__(self, body: bytes, offset: int, length: int, suffix: bytes) -> None:
        self._body = body
        self._offset = offset
        self._length = length
        self._message: Span | None = None
        self._suffix = bytearray(suffix)

    def message(self) -> Span:
        """The span decoded (once), with the appended attributes."""
        if self._message is None:
            start = self._offset
            message = Span.FromString(self._body[start : start + self._length])
            if self._suffix:
                message.MergeFromString(bytes(self._suffix))
            self._message = message
        return self._message

    def append(self, encoded: bytes) -> None:
        """Appends encoded Span fields (attributes) to the span."""
        if self._message is not None:
            self._message.MergeFromString(encoded)
        else:
            self._suffix += encoded

    def edit(self) -> bytes | bytearray | None:
        """What the forwarded request needs: the span's new encoding (bytes) once decoded,
        else the bytes to append to it (bytearray), or None when nothing changed."""
        if self._message is not None:
            return self._message.SerializeToString()
        return self._suffix or None

    def __getattr__(self, name: str) -> Any:
        # reading a field (attributes included, to change them) decodes the span; setting a
        # scalar field directly is refused (AttributeError): set it on message()
        return getattr(self.message(), name)


def append_attribute(span: Span | WireSpan, key: str, value: AttrValue) -> None:
    """Appends one scalar attribute to a span, protobuf or wire (no duplicate check)."""
    if isinstance(span, WireSpan):
        span.append(encode_attribute(key, value))
        return
    kv: KeyValue = span.attributes.add()
    kv.key = key
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    else:
        kv.value.string_value = value


def encode_attribute(key: str, value: AttrValue) -> bytes:
    """``Span.attributes`` entry (field 9) of one scalar, as protobuf encodes it."""
    if isinstance(value, bool):
        any_value = b"\x10" + (b"\x01" if value else b"\x00")
    elif isinstance(value, int):
        any_value = b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    elif isinstance(value, float):
        any_value = b"\x21" + struct.pack("<d", value)
    else:
        text = value.encode()
        any_value = b"\x0a" + _varint(len(text)) + text
    prefix = _KEYS.get(key)
    if prefix is None:
        name = key.encode()
        prefix = b"\x0a" + _varint(len(name)) + name
        if len(_KEYS) < 1024:  # the daemon's own few keys; anything else is encoded each time
            _KEYS[key] = prefix
    kv = prefix + b"\x12" + _varint(len(any_value)) + any_value
    return _FIELD + _varint(len(kv)) + kv


def double_attribute(key: str) -> Callable[[float], bytes]:
    """:func:`encode_attribute` of ``key`` for float values, its bytes before the value built
    once (a double's encoding has one length, so only its last 8 bytes change)."""
    head = encode_attribute(key, 0.0)[:-8]
    pack = _DOUBLE.pack

    def encode(value: float) -> bytes:
        return head + pack(value)

    return encode


_DOUBLE = struct.Struct("<d")
_FIELD = bytes([_ATTRIBUTES << 3 | 2])
_KEYS: dict[str, bytes] = {}


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = [bytes([n]) for n in range(0x80)]
