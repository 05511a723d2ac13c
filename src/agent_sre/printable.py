"""Text a client sent, made safe to show on a terminal or in a document. Pure.

One rule for every place that shows such text (the CLI's tables, ``agent-sre top``, a
certification verdict): a character that is not printable (C0 and C1 controls such as ESC,
format characters such as bidi overrides, line and paragraph separators) is replaced by its
Python escape (``\\x1b``, ``\\x9b``, ``\\u202e``), so it is seen, never obeyed.
"""

from __future__ import annotations

_KEPT_IN_LINES = frozenset("\n\t")


def escape_controls(text: str, *, lines: bool = False) -> str:
    """``text`` with every non-printable character escaped; with ``lines``, newlines and tabs
    are kept (a multi-line document)."""
    if text.isprintable():  # the common case: no copy
        return text
    return "".join(
        c if c.isprintable() or (lines and c in _KEPT_IN_LINES) else _escape(c) for c in text
    )


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
