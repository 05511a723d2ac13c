"""Property tests of the replay decoders: cassettes and canonical request bodies."""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from agent_sre.replay.canonical import canonical_body, differences
from agent_sre.replay.cassette import Cassette, CassetteError, loads
from agent_sre.replay.exchange import Exchange
from agent_sre.replay.redaction import Redactor

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20,
)  # fmt: skip


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_loading_anything_gives_a_cassette_or_a_cassette_error(data: bytes) -> None:
    try:
        loads(data, "fuzz.json")
    except CassetteError as exc:
        assert str(exc).startswith("fuzz.json")


@given(
    st.binary(max_size=200),
    st.lists(st.tuples(st.floats(0, 100), st.binary(max_size=50)), max_size=5),
)
def test_any_exchange_round_trips_through_a_cassette(
    request: bytes, chunks: list[tuple[float, bytes]]
) -> None:
    chunks = [(round(at, 6), data) for at, data in chunks]
    exchange = Exchange("r", "/p", "openai", "POST", "/x", request=request, status=200,
                        chunks=chunks)  # fmt: skip
    assert loads(Cassette("t", [exchange]).dumps()).exchanges == [exchange]


texts = st.text(max_size=12)  # any code point, lone surrogates and controls included
bodies = st.binary(max_size=60) | st.text(max_size=60).map(
    lambda t: t.encode("utf-8", "surrogatepass")
)
stamps = st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e-7, 1e300]) | st.floats()
odd = st.none() | st.integers() | st.text(max_size=3) | st.floats() | st.booleans()


@given(
    st.fixed_dictionaries(
        {
            "route": texts, "prefix": texts, "api": texts, "method": texts, "path": texts,
            "query": texts, "request": bodies, "status": st.integers(-(2**70), 2**70),
            "content_type": texts, "streamed": st.booleans(),
            "chunks": st.lists(st.tuples(stamps, bodies), max_size=4),
            "truncated": st.booleans(), "error": texts, "trace_id": texts, "span_id": texts,
            "at": stamps,
        }
    ),
    st.one_of(st.none(), st.tuples(st.sampled_from(["status", "at", "streamed", "request",
                                                    "chunks", "route"]), odd)),
)  # fmt: skip
def test_an_exchanges_text_is_json_dumps_of_its_json_to_the_character(
    fields: dict[str, object], wrong: tuple[str, object] | None
) -> None:
    """The writer's encoding of a captured call is exactly the general encoder's, for any
    field values, and for a field of the wrong type (which takes the general way)."""
    exchange = Exchange(**fields)  # type: ignore[arg-type]
    if wrong is not None:
        name, value = wrong
        setattr(exchange, name, [(value, b"x")] if name == "chunks" else value)
    try:
        expected = json.dumps(exchange.to_json())
    except (TypeError, ValueError, AttributeError) as exc:  # what json cannot write
        try:
            exchange.to_json_text()
        except type(exc):
            return
        raise AssertionError(f"{exc!r}: to_json_text wrote something") from None
    assert exchange.to_json_text() == expected


@given(json_values)
def test_canonical_form_ignores_layout_and_a_value_has_no_differences(value: object) -> None:
    compact = json.dumps(value, separators=(",", ":")).encode()
    spaced = json.dumps(value, indent=3).encode()
    assert canonical_body(compact) == canonical_body(spaced)
    assert differences(compact, spaced) == []


@given(st.binary(max_size=300))
def test_redaction_is_idempotent(data: bytes) -> None:
    redactor = Redactor()
    once = redactor.redact(data)
    assert redactor.redact(once) == once


secret_like = st.sampled_from(
    [
        "sk-proj-abcdefghijklmnop0123",
        "AKIAABCDEFGHIJKLMNOP",
        "Bearer tok.en",
        "bearer\tx",
        "a.b@c.example",
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "AIza" + "B" * 35,
        "bearer\vx",
        "12345678901234",  # a digit run that is no card number
        "1234567890123456789@x.example",  # ... and an address that starts inside one
        "1732579200123",  # epoch milliseconds
    ]
)


@given(st.lists(st.binary(max_size=30) | secret_like.map(str.encode), max_size=6))
def test_the_cheap_scan_finds_everything_redaction_would_change(pieces: list[bytes]) -> None:
    data = b" ".join(pieces)
    redactor = Redactor()
    if redactor.redact(data) != data:
        assert redactor.finds(data)
