"""The redactor's fast paths decide exactly what the reference rules (Python ``re``) decide:
the default rules run on RE2 over bytes, every byte a character (linear, where ``re``
backtracked quadratically), and :meth:`Redactor.redact` skips the replacing when one RE2 scan
finds nothing. Bytes that are no UTF-8 (``\\xff``) and vertical tabs included."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_sre.replay import redaction as r

PIECES = [
    b"api_key", b"=", b"key", b"token", b":", b" ", b'"', b"Bearer ", b"bearer\x0b", b"sk-",
    b"A" * 20, b"abc", b"-", b"_", b".", b"&", b"?", b"\n", b"\t", b"X-Api-Key",
    b"client_secret", b"password", b"4111 1111 1111 1111", b"a@b.co", b"AKIA" + b"B" * 16,
    b"ghp_" + b"c" * 31, b"max_tokens", b"cache_key", b"{", b"}", b",", b"\\", b"'",
    b"Authorization", b"basic ", b"\x12", b"pass", b"x", b"1234567890", b"\x0b", b"\x0c",
    b"\xc3\xa9", b"\xff", b"#", b"<", b";", b"KEY", b"Token",
]  # fmt: skip
REFERENCE_SHAPES = re.compile(b"|".join(b"(?:" + p.encode() + b")" for p in r.DEFAULT_PATTERNS))
REFERENCE_NAMED = [re.compile(p.encode()) for p in r.NAMED_PATTERNS]


def reference_ranges(redactor: r.Redactor, data: bytes) -> list[tuple[int, int]]:
    """The default rules as :mod:`re` reads them (what the RE2 forms must agree with)."""
    found: list[tuple[int, int]] = []
    for pattern in (REFERENCE_SHAPES,):
        found += [m.span() for m in pattern.finditer(data) if m.end() > m.start()]
    for pattern in REFERENCE_NAMED:
        found += [m.span(1) for m in pattern.finditer(data) if m.group(1) != r.MARK]
    found += [
        m.span()
        for m in r._CARD.finditer(data)
        if r._card(m) == r.MARK and not r._in_number(data, m.start(), m.end())
    ]
    found.sort()
    merged: list[tuple[int, int]] = []
    for start, end in found:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=30).map(b"".join))
def test_the_fast_rules_find_what_the_reference_rules_find(data: bytes) -> None:
    redactor = r.Redactor()
    expected = reference_ranges(redactor, data)
    assert redactor.ranges(data) == expected
    if expected:  # the one-scan gate never skips a body that holds something
        assert redactor.finds(data)
        assert redactor.redact(data) != data


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_the_reference_would_redact_are_redacted(data: bytes) -> None:
    redactor = r.Redactor()
    expected = reference_ranges(redactor, data)
    assert redactor.ranges(data) == expected
    assert bool(expected) <= redactor.finds(data)


def test_a_long_body_holding_credentials_is_redacted() -> None:
    """A conversation-sized body (176 KB) with credentials at its end: ``re`` took ~45 ms
    for 11 KB of it (quadratic in runs of word characters), RE2 reads it in one pass."""
    redactor = r.Redactor()
    words = "lorem ipsum dolor sit amet " * 6500
    body = json.dumps({"messages": [{"content": words + " my password: hunter2 key=abc"}]})
    out = redactor.redact(body.encode())
    assert out.endswith(b'password: [REDACTED] key=[REDACTED]"}]}')
    assert out.count(r.MARK) == 2


@pytest.mark.parametrize(
    ("body", "kept"),
    [
        (b"api_key=\xffsecret123", b"api_key=[REDACTED]"),
        (b'{"client_secret": "\xffabc"}', b'{"client_secret": "[REDACTED]"}'),
        (b"password: \xe9t\xe9", b"password: [REDACTED]"),  # Latin-1 text, not UTF-8
        (b"X-Api-Key:\x0bk1 key=\x0bv", b"X-Api-Key:\x0bk1 key=\x0bv"),  # a value can't start so
    ],
)
def test_a_value_in_bytes_that_are_not_utf8_is_redacted_too(body: bytes, kept: bytes) -> None:
    """RE2 in its default UTF-8 mode matched no invalid byte: these values were kept."""
    redactor = r.Redactor()
    assert redactor.redact(body) == kept
    assert redactor.redact(body) == body or redactor.finds(body)


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from(PIECES), max_size=12).map(b"".join), min_size=1, max_size=8),
    st.sampled_from([(), (r"^secret",), (r"tok$",)]),
)
def test_one_pass_over_parts_finds_what_a_pass_per_part_finds(
    parts: list[bytes], extra: tuple[str, ...]
) -> None:
    # the trace buffer's writer looks over 64 items in one RE2 pass (a pass per item made
    # it wait for the GIL once per item); it must never skip an item holding something
    redactor = r.Redactor(extra)
    if any(redactor.finds(part) for part in parts):
        assert redactor.finds_in(parts)
    else:  # and it stays exact when no part holds anything joined rules could see
        assert redactor.finds_in(parts) == redactor.finds(b"\n".join(parts))


def test_configured_anchored_patterns_are_tried_on_each_part() -> None:
    redactor = r.Redactor((r"^secret\d+",))
    assert not redactor.finds(b"clean\nsecret1")  # no MULTILINE: ^ is the start only
    assert redactor.finds_in([b"clean", b"secret1"])
    assert not redactor.finds_in([b"clean", b"still clean"])


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.lists(st.sampled_from(PIECES), max_size=10).map(b"".join), max_size=20))
def test_kept_answers_are_the_scans_answers(inputs: list[bytes]) -> None:
    # the identity stage asks about a call's ids call after call; a kept answer must be the
    # one a scan gives, the first time and every time after
    redactor = r.Redactor()
    for data in inputs + inputs:
        assert redactor.finds_recent(data) == redactor.finds(data)


def test_kept_answers_are_bounded_and_forgotten_at_once() -> None:
    redactor = r.Redactor()
    for n in range(r.RECENT_ANSWERS * 3 + 5):  # a client inventing an id a call
        assert not redactor.finds_recent(f"agent-{n}".encode())
        assert len(redactor._recent) <= r.RECENT_ANSWERS
    assert redactor.finds_recent(b"sk-proj-" + b"Z" * 20)
    assert redactor.finds_recent(b"sk-proj-" + b"Z" * 20)  # kept: found again


PLAIN_PIECES = [
    b"task", b"-", b"sk-", b"ask-", b"sk", b"proj-", b"A" * 16, b"AKIA", b"xAKIA", b"AIza",
    b"Z" * 35, b"gh", b"ghp_", b"xghs_", b"c" * 31, b"bEaReR", b"bearer", b" ", b"\n", b"/",
    b"_", b".", b"1", b"12345", b"4111", b"0000000", b"-1", b"chat gpt-4o-mini", b"agent",
    b"\t", b":", b"=", b'"', b"@", b"\x12", b"key", b"token",
]  # fmt: skip


@settings(max_examples=5000, deadline=None)
@given(st.lists(st.sampled_from(PLAIN_PIECES), max_size=40).map(b"".join))
def test_text_told_clean_without_re2_is_clean_to_re2(data: bytes) -> None:
    # short plain text (a call's ids and its span's names) is told clean in Python, which
    # keeps the GIL; it must never call clean what RE2's scan would stop at
    if r._plain_and_clean(data):
        assert not r._scan(data), data
    assert r.Redactor().finds(data) == r._scan(data)


def test_long_input_is_scanned_each_time_and_never_kept() -> None:
    redactor = r.Redactor()
    long_id = b"agent-" + b"x" * r.RECENT_MAX
    assert not redactor.finds_recent(long_id)
    assert redactor.finds_recent(long_id + b" sk-proj-" + b"Z" * 20)
    assert redactor._recent == {}  # a client's 8 KiB ids do not pile up 4,096 times
