"""The one way commands print what they read: a rich table for people, ``--json`` for
machines, and errors on stderr.

This is also the gate for text that came from clients (agent ids from ``X-Agent-Id``, SLO
label values, incident titles, span names, error messages): everything the daemon answered is
shown inert, through :func:`inert` / :func:`inert_text`. Markup is never parsed (``[/bold]x``
is shown as typed) and control or format characters (ESC, C1 controls, bidi overrides) are
shown as escapes (``\\x1b``, ``\\u202e``), so nothing a client sent reaches the operator's
terminal as a style or an escape sequence. The console :func:`console` returns applies
:func:`inert` to every string rich renders (table cells, titles, printed values); a
:class:`~rich.text.Text` built by a command must be built from :func:`inert` pieces.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

from agent_sre.printable import escape_controls
from agent_sre_daemon.cli import exits

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from rich.console import Console, JustifyMethod, OverflowMethod, RenderableType
    from rich.style import Style
    from rich.text import Text

MAX_CELL = 200
"""Longest string rich is given to show (a cell, a title), cut with ``~``: a client's very long
id must not push every other column off the table."""

WIDTH_WHEN_PIPED = 160
"""Columns of a table written to a pipe or file (rich would otherwise wrap at 80)."""


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the API's JSON")


def show(args: argparse.Namespace, data: Any, render: Callable[[Any], RenderableType]) -> int:
    """Prints ``data``: as JSON with ``--json``, else what ``render`` makes of it."""
    if getattr(args, "json", False):
        print_json(data)
    else:
        console().print(render(data))
    return exits.OK


def print_json(data: Any) -> None:
    # json.dumps escapes every control character (ensure_ascii keeps bidi overrides as \\u)
    print(json.dumps(data, indent=2))


def inert_text(value: Any, limit: int | None = None, *, lines: bool = False) -> str:
    """``value`` as a string safe for a terminal: every character that is not printable
    (control and format characters: ESC, C1 controls, bidi overrides, line separators) is
    replaced by its Python escape (``\\x1b``, ``\\x85``, ``\\u202e``); with ``lines``, newlines
    and tabs are kept (a document such as a postmortem). Cut to ``limit`` characters with
    ``~`` when longer. ``None`` is shown as the empty string."""
    text = value if isinstance(value, str) else "" if value is None else str(value)
    text = escape_controls(text, lines=lines)
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)] + "~"
    return text


def inert(value: Any, limit: int | None = None, style: str = "") -> Text:
    """``value`` as a rich :class:`~rich.text.Text` shown as typed: no markup parsed, control
    characters escaped (:func:`inert_text`), cut to ``limit`` characters."""
    from rich.text import Text

    return Text(inert_text(value, limit), style=style)


def say(*parts: Any, end: str = "\n", file: TextIO | None = None) -> None:
    """``print`` for lines that carry what the daemon answered: each part through
    :func:`inert_text` (newlines and tabs kept, so a document prints as one)."""
    print(*(inert_text(part, lines=True) for part in parts), end=end, file=file)


def console() -> Console:
    from rich.console import Console

    class _Console(Console):
        def render_str(
            self,
            text: str,
            *,
            style: str | Style = "",
            justify: JustifyMethod | None = None,
            overflow: OverflowMethod | None = None,
            **_: Any,
        ) -> Text:
            # The gate: every string rich renders (cells, titles, printed values) is shown
            # as typed; markup, emoji codes and highlighting are never applied.
            from rich.text import Text

            return Text(inert_text(text, MAX_CELL), style=style, justify=justify, overflow=overflow)

        def on_broken_pipe(self) -> None:
            # rich exits 1 itself; main() ends every command the same way instead (141)
            self.quiet = True
            raise BrokenPipeError

    return _Console(
        file=sys.stdout,
        width=None if sys.stdout.isatty() else WIDTH_WHEN_PIPED,
        markup=False,
        emoji=False,
        highlight=False,
    )


def fail(message: object, code: int = exits.FAILURE) -> int:
    """Prints ``agent-sre: message`` on stderr and returns ``code``."""
    say(f"agent-sre: {message}", file=sys.stderr)
    return code
