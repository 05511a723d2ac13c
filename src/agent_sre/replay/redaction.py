"""Redaction: the one set of rules that decides what the daemon may keep at rest.

A credential is recognised two ways, and replaced with ``[REDACTED]``:

- **by its shape**, wherever it is: API keys (OpenAI/Anthropic ``sk-...``, AWS ``AKIA...``,
  Google ``AIza...``, GitHub ``ghp_...``), bearer tokens, e-mail addresses, card numbers
  (13-19 digits passing the Luhn check), and the configured patterns;
- **by its name**: the value of a query parameter (``?key=``, ``&api_key=``), a header line
  (``X-Api-Key: ...``), a JSON field (``"client_secret": "..."``) or an attribute named like
  a credential (:func:`credential_name`), whatever the value looks like.

:meth:`Redactor.finds` is the cheap pre-scan (one pass of an RE2 automaton over every rule,
attribute names in OTLP protobuf bytes included); the rest runs only on what it flags.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

import re2

if TYPE_CHECKING:
    from collections.abc import Sequence

MARK = b"[REDACTED]"
TEXT_MARK = MARK.decode()

DEFAULT_PATTERNS: tuple[str, ...] = (
    r"\bsk-(?:ant-|proj-|live-|test-)?[A-Za-z0-9_\-]{16,}",
    r"\bAKIA[0-9A-Z]{16}\b",
    r"\bAIza[0-9A-Za-z_\-]{35}\b",
    r"\bgh[pousr]_[A-Za-z0-9]{30,}\b",
    r"(?i:\bbearer)\s+[A-Za-z0-9._~+/\-]+=*",
    r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}",
)
"""Credentials (and personal data) recognised by their shape."""

_KEYWORDS = (
    r"api[_.\-]?key|apikey|secret|passw(?:or)?d|passphrase|credential|authori[sz]ation|cookie"
    r"|(?:auth|access|refresh|id|session|security|api|bearer)[_.\-]?token"
    r"|(?:private|subscription|routing|signing)[_.\-]?key|amz[_.\-]signature"
)
"""A name holding one of these (any case) names a credential: ``X-Goog-Api-Key``,
``client_secret``, ``http.request.header.authorization``, ``access_token``..."""
_EXACT = r"key|token|sig|pwd|pass|auth|jwt"
"""Names that are a credential's name only on their own (``?key=``, ``{"token": ...}``), not
inside another (``cache_key``, ``max_tokens``)."""
_NAME = rf"[A-Za-z0-9_.\-]*(?:{_KEYWORDS})[A-Za-z0-9_.\-]*|\b(?:{_EXACT})"

_SPACE = r"[\t\n\v\f\r ]"
_NAMED: tuple[tuple[str, str], ...] = (
    (rf"\b(?:{_NAME})=", r"[^&#\s\"'<>;,\\]+"),
    (rf"\"(?:{_NAME})\"{_SPACE}*:{_SPACE}*\"", r"(?:[^\"\\]|\\.)+"),
    (
        rf"\b(?:{_NAME})[ \t]*:[ \t]*(?:(?:basic|bearer|token|digest|apikey)[ \t]+)?",
        r"[^\s\"',;\\]+",
    ),
)
"""A credential by the name it comes under, in text: a query parameter, a JSON field, a
header line (the name, then the value that is replaced; the name stays)."""
NAMED_PATTERNS: tuple[str, ...] = tuple(f"(?i:{name})({value})" for name, value in _NAMED)
""":data:`_NAMED` as expressions whose group 1 is the value."""

_CARD = re.compile(rb"\b(?:\d[ \-]?){12,18}\d\b")
_PROTO_NAME = rf"(?i:{_KEYWORDS})[A-Za-z0-9_.\-]*\x12|[^A-Za-z0-9_.\-](?i:{_EXACT})\x12"
"""An OTLP attribute whose key names a credential: in protobuf bytes a ``KeyValue``'s key is
followed by the tag of its value (``0x12``)."""


def _re2_form(pattern: str) -> bytes:
    return pattern.encode().replace(rb"\s", rb"[\t\n\v\f\r ]")


def _re2_value(value: str) -> str:
    """A value's expression for RE2: its ``\\s`` (each inside a character class) spelled
    out, since RE2's leaves out the vertical tab that :mod:`re`'s takes in."""
    return value.replace(r"\s", r"\t\n\v\f\r ")


def _bytes_re2(pattern: bytes) -> re2._Regexp:
    """``pattern`` compiled by RE2 over bytes, each byte one character as in :mod:`re`'s
    bytes patterns (in RE2's default, UTF-8, no class matches an invalid byte: a named
    value holding one went unredacted, and unseen by the scan)."""
    options = re2.Options()
    options.encoding = re2.Options.Encoding.LATIN1
    return re2.compile(pattern, options)


_SCAN = _bytes_re2(
    b"|".join(b"(?:" + _re2_form(p) + b")" for p in DEFAULT_PATTERNS)
    + b"".join(
        b"|(?i:" + n.encode() + b")(?:" + _re2_value(v).encode() + b")" for n, v in _NAMED
    )
    + b"|(?:" + _PROTO_NAME.encode() + b")"
    + b"|(" + _CARD.pattern + b")"
)  # fmt: skip
"""Every rule and every card candidate in one pass of RE2's automaton (linear in the bytes,
whatever the number of rules: three times cheaper than scanning once per rule with
:mod:`re`); its one group is a card candidate. Only the scan uses it; the replacing keeps
:mod:`re`."""

_CREDENTIAL_NAME = re.compile(rf"(?i:\S*(?:{_KEYWORDS})\S*|{_EXACT})")


def credential_name(name: str) -> bool:
    """Whether a header, query parameter, JSON field or attribute called ``name`` holds a
    credential (its value is then never kept, whatever it looks like)."""
    if len(name) > _CACHED_NAME:
        return _CREDENTIAL_NAME.fullmatch(name) is not None
    return _credential_name(name)


_CACHED_NAME = 128
"""Names up to this long are remembered (a stream repeats its few names in every event)."""


@functools.lru_cache(maxsize=4096)
def _credential_name(name: str) -> bool:
    return _CREDENTIAL_NAME.fullmatch(name) is not None


_SHAPES_RE2 = _bytes_re2(b"|".join(b"(?:" + _re2_form(p) + b")" for p in DEFAULT_PATTERNS))
_NAMED_RE2 = [
    _bytes_re2(("(?i:" + name + ")(" + _re2_value(value) + ")").encode()) for name, value in _NAMED
]
_CARD_RE2 = _bytes_re2(_CARD.pattern)
"""The default rules for replacing, in RE2 too: linear in the bytes whatever they hold (with
:mod:`re`, a long run of letters before a rule's anchor costs quadratic time: 40 KB of ``a``
took 8 s), so no body can hold the writer up."""


RECENT_ANSWERS = 4096
"""Answers :meth:`Redactor.finds_recent` keeps, each for at most :data:`RECENT_MAX` bytes
(about 2.5 MiB in all at most)."""
RECENT_MAX = 512


class Redactor:
    """Replaces credentials in bytes and text with ``[REDACTED]``.

    Args:
        extra: configured regular expressions (already validated; Python syntax, so they
            run with :mod:`re`).
    """

    def __init__(self, extra: tuple[str, ...] | list[str] = ()) -> None:
        # configured patterns each on their own (they may carry flags of their own, which
        # cannot be joined into one expression)
        self._extra = [re.compile(p.encode()) for p in extra]
        self._recent: dict[bytes, bool] = {}

    def ranges(self, data: bytes) -> list[tuple[int, int]]:
        """Where ``data`` holds something to replace: sorted, merged ``(start, end)``."""
        found: list[tuple[int, int]] = [m.span() for m in _SHAPES_RE2.finditer(data)]
        for pattern in self._extra:
            found += [m.span() for m in pattern.finditer(data) if m.end() > m.start()]
        for named in _NAMED_RE2:
            found += [
                m.span(1) for m in named.finditer(data) if data[m.start(1) : m.end(1)] != MARK
            ]
        found += [
            m.span()
            for m in _CARD_RE2.finditer(data)
            if _luhn_bytes(m.group()) and not _in_number(data, m.start(), m.end())
        ]
        if not found:
            return found
        found.sort()
        merged = [found[0]]
        for start, end in found[1:]:
            last_start, last_end = merged[-1]
            if start <= last_end:
                merged[-1] = (last_start, max(last_end, end))
            else:
                merged.append((start, end))
        return merged

    # hot path: per captured body
    def redact(self, data: bytes) -> bytes:
        """``data`` with every credential replaced (one pass of :meth:`finds` when there is
        none, as in most bodies)."""
        if not self.finds(data):
            return data
        ranges = self.ranges(data)
        if not ranges:
            return data
        out = []
        at = 0
        for start, end in ranges:
            out.append(data[at:start])
            out.append(MARK)
            at = end
        out.append(data[at:])
        return b"".join(out)

    # hot path: per stored request (about 0.6 us a span when nothing is found)
    def finds(self, data: bytes) -> bool:
        """Whether ``data`` may hold anything :meth:`redact` would replace, or an attribute
        named like a credential (a superset: a true answer is checked field by field)."""
        if not _plain_and_clean(data) and _scan(data):
            return True
        return any(pattern.search(data) for pattern in self._extra)

    # hot path: per proxied call (its ids)
    def finds_recent(self, data: bytes) -> bool:
        """:meth:`finds`, its answers kept for the last :data:`RECENT_ANSWERS` distinct
        inputs (then forgotten at once): an agent's ids come back call after call, and each
        RE2 call on the event loop gives the GIL to another thread that wants it (the trace
        buffer's writer), for up to the switch interval (5 ms) before the loop has it back."""
        if len(data) > RECENT_MAX:  # what is kept stays small, whatever a client sends
            return self.finds(data)
        recent = self._recent
        found = recent.get(data)
        if found is None:
            if len(recent) >= RECENT_ANSWERS:
                recent.clear()
            found = recent[data] = self.finds(data)
        return found

    def finds_in(self, parts: Sequence[bytes]) -> bool:
        """Whether any of ``parts`` may hold what :meth:`finds` looks for: one pass of the
        rules over the parts joined by a newline (each part's match is one of the whole's;
        no rule anchors at a start or an end), configured patterns part by part (they
        may). A thread calling RE2 gives the GIL up on each call and, on a busy node, waits
        up to the switch interval (5 ms) to have it back: a pass per part made the trace
        buffer's writer fall minutes behind a loaded proxy."""
        if _scan(b"\n".join(parts)):
            return True
        return any(pattern.search(part) for pattern in self._extra for part in parts)

    def redact_text(self, text: str) -> str:
        encoded = text.encode("utf-8", "surrogatepass")
        redacted = self.redact(encoded)
        return text if redacted is encoded else redacted.decode("utf-8", "replace")


_PLAIN = re.compile(rb"[A-Za-z0-9_.\-/ \n]*")
_PLAIN_MAX = 512
"""Longer text goes to RE2 (the Python checks are linear, but slower than its one pass)."""
_SHAPE_STARTS = re.compile(rb"\b(?:sk-|AKIA|AIza|gh[pousr]_|(?i:bearer))")


def _plain_and_clean(data: bytes) -> bool:
    """Whether ``data`` is short text no default rule can match, told without RE2 (which
    gives the GIL up: on the event loop, for up to 5 ms while another thread runs). Letters,
    digits, ``_.-/``, spaces and newlines only: no rule by name can match (each needs ``=``,
    ``:`` or ``"``), nor an address (``@``) or a protobuf key (``\x12``); of the shapes, each
    starts with its literal at a word's start (``sk-``, ``AKIA``, ``AIza``, ``gh?_``, ``bearer``
    in any case), and a card is looked for as the scan does (:mod:`re`, linear on this
    expression). Anything else goes to the scan."""
    return (
        len(data) <= _PLAIN_MAX
        and _PLAIN.fullmatch(data) is not None
        and _SHAPE_STARTS.search(data) is None
        and _CARD.search(data) is None
    )


def _scan(data: bytes) -> bool:
    at = 0
    while (match := _SCAN.search(data, at)) is not None:
        if match.group(1) is None or _card_at(data, match.start()):
            return True
        at = match.start() + 1  # a digit run that is no card: a secret may start inside
    return False


def _card_at(data: bytes, start: int) -> bool:
    """Whether :meth:`Redactor.redact` would replace a card number found at ``start``."""
    match = _CARD.match(data, start)
    return match is not None and _card(match) == MARK and not _in_number(data, start, match.end())


def _in_number(data: bytes, start: int, end: int) -> bool:
    """Whether the digits at ``start:end`` are part of a decimal number (the fraction of a
    float such as ``1.7961999089417322e-11``, or its integer part): no card, and replacing
    them would break the JSON they sit in."""
    fraction = (
        start >= 2 and data[start - 1 : start] == b"." and data[start - 2 : start - 1].isdigit()
    )
    after = data[end : end + 2]
    whole = after[:1] == b"." and after[1:].isdigit()
    exponent = after[:1] in (b"e", b"E") and (after[1:].isdigit() or after[1:] in (b"-", b"+"))
    return fraction or whole or exponent


def _card(match: re.Match[bytes]) -> bytes:
    return MARK if _luhn_bytes(match.group()) else match.group()


def _luhn_bytes(candidate: bytes) -> bool:
    return _luhn([c - 48 for c in candidate if 48 <= c <= 57])


def _luhn(digits: list[int]) -> bool:
    total = 0
    for i, digit in enumerate(reversed(digits)):
        if i % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0
