"""A secret split across the chunks of a captured stream is redacted too."""

from __future__ import annotations

from agent_sre.replay.redaction import Redactor
from agent_sre_daemon.replay.buffer import redacted_chunks

KEY = b"sk-proj-Zq81xWmB4tKd9LrP2vYc"


def test_a_key_split_across_chunks_is_redacted() -> None:
    for cut in range(1, len(KEY)):
        chunks = [
            (0.0, b'data: {"delta": "say hi"}\n\n'),
            (0.1, b'data: {"delta": "' + KEY[:cut]),
            (0.2, KEY[cut:] + b'"}\n\n'),
            (0.3, b"data: [DONE]\n\n"),
        ]
        out = redacted_chunks(chunks, Redactor())
        joined = b"".join(chunk for _, chunk in out)
        assert KEY[4:] not in joined, cut
        assert joined.startswith(b'data: {"delta": "say hi"}') and joined.endswith(b"[DONE]\n\n")


def test_a_stream_without_a_split_secret_keeps_its_chunks_and_times() -> None:
    chunks = [(0.0, b"data: one\n\n"), (0.5, b"data: " + KEY + b"\n\n"), (0.9, b"data: two\n\n")]
    out = redacted_chunks(chunks, Redactor())
    assert [at for at, _ in out] == [0.0, 0.5, 0.9]
    assert out[0] == chunks[0] and out[2] == chunks[2]
    assert KEY not in out[1][1]


def test_a_key_cut_into_single_bytes_is_redacted() -> None:
    chunks = [(i * 0.01, bytes([b])) for i, b in enumerate(b"key " + KEY + b" end")]
    joined = b"".join(chunk for _, chunk in redacted_chunks(chunks, Redactor()))
    assert KEY[4:] not in joined
    assert joined.startswith(b"key ") and joined.endswith(b" end")
