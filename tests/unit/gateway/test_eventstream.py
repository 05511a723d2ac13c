"""The AWS event-stream reader: the same messages as botocore's parser on any split of a
valid stream, and never an exception, an unbounded buffer or a made-up message on a
hostile one."""

from __future__ import annotations

import struct
import zlib

from botocore.eventstream import EventStreamBuffer
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_sre.gateway.eventstream import EventStreamReader, encode_message

_U32 = struct.Struct(">I")


def typed_message(headers: list[tuple[str, int, bytes]], payload: bytes) -> bytes:
    """A message with typed headers: (name, type, encoded value)."""
    block = b"".join(
        bytes([len(name)]) + name.encode() + bytes([kind]) + value for name, kind, value in headers
    )
    total = 12 + len(block) + len(payload) + 4
    prelude = struct.pack(">II", total, len(block))
    head = prelude + _U32.pack(zlib.crc32(prelude)) + block + payload
    return head + _U32.pack(zlib.crc32(head))


HEADER_VALUES = st.one_of(
    st.booleans().map(lambda b: (0 if b else 1, b"")),
    st.integers(-128, 127).map(lambda v: (2, v.to_bytes(1, "big", signed=True))),
    st.integers(-(2**15), 2**15 - 1).map(lambda v: (3, v.to_bytes(2, "big", signed=True))),
    st.integers(-(2**31), 2**31 - 1).map(lambda v: (4, v.to_bytes(4, "big", signed=True))),
    st.integers(-(2**63), 2**63 - 1).map(lambda v: (5, v.to_bytes(8, "big", signed=True))),
    st.binary(max_size=40).map(lambda b: (6, len(b).to_bytes(2, "big") + b)),
    st.text(max_size=40).map(lambda t: (7, len(t.encode()).to_bytes(2, "big") + t.encode())),
    st.binary(min_size=16, max_size=16).map(lambda b: (9, b)),
)
MESSAGES = st.lists(
    st.tuples(
        st.dictionaries(st.text("abcdefgh:-", min_size=1, max_size=12), HEADER_VALUES, max_size=5),
        st.binary(max_size=300),
    ),
    max_size=6,
)


def _ours(stream: bytes, cuts: list[int], max_message: int = 1 << 20) -> list[tuple]:
    reader = EventStreamReader(max_message)
    out = []
    start = 0
    for cut in [*sorted(cuts), len(stream)]:
        for message in reader.feed(stream[start:cut]):
            out.append((message.headers, message.payload))
        start = max(start, cut)
    assert not reader.broken
    return out


@settings(max_examples=150, deadline=None)
@given(MESSAGES, st.lists(st.integers(0, 4000), max_size=8))
def test_same_messages_as_botocore_whatever_the_split(messages, cuts) -> None:
    stream = b"".join(
        typed_message([(n, k, v) for n, (k, v) in headers.items()], payload)
        for headers, payload in messages
    )
    theirs = EventStreamBuffer()
    theirs.add_data(stream)
    expected = [(m.headers, m.payload) for m in theirs]
    assert _ours(stream, [c for c in cuts if c <= len(stream)]) == expected


@settings(max_examples=300, deadline=None)
@given(
    MESSAGES,
    st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 255)), min_size=1, max_size=6),
    st.lists(st.integers(0, 5000), max_size=6),
    st.integers(16, 600),
)
def test_hostile_bytes_never_raise_and_stay_bounded(messages, flips, cuts, limit) -> None:
    stream = bytearray(
        b"".join(
            typed_message([(n, k, v) for n, (k, v) in headers.items()], payload)
            for headers, payload in messages
        )
        or b"\x00" * 20
    )
    for at, value in flips:
        stream[at % len(stream)] = value
    reader = EventStreamReader(limit)
    start = 0
    read = 0
    for cut in [*sorted(c % (len(stream) + 1) for c in cuts), len(stream)]:
        for message in reader.feed(bytes(stream[start:cut])):
            read += 1
            assert len(message.payload) <= limit
        assert len(reader._buffer) <= limit + len(stream)  # one partial message at most
        start = max(start, cut)
    assert read <= len(messages)  # nothing made up: a CRC guards every message


def test_a_bad_crc_stops_the_reading_and_an_oversized_message_is_passed_over() -> None:
    good = encode_message({":event-type": "metadata"}, b'{"usage":{}}')
    big = encode_message({":event-type": "contentBlockDelta"}, b"x" * 5000)
    reader = EventStreamReader(max_message=1000)
    out = reader.feed(good + big[:100])
    out += reader.feed(big[100:] + good)
    assert [m.headers[":event-type"] for m in out] == ["metadata", "metadata"]
    assert reader.oversized == 1 and not reader.broken
    bad = bytearray(good)
    bad[-1] ^= 0xFF
    assert reader.feed(bytes(bad) + good) == []
    assert reader.broken == "message CRC does not match"
    assert reader.feed(good) == []  # stays stopped: the stream's framing is lost
    lying = struct.pack(">II", 10, 0)
    fresh = EventStreamReader()
    assert fresh.feed(lying + _U32.pack(zlib.crc32(lying)) + b"\x00" * 8) == []
    assert fresh.broken == "message lengths do not add up"
