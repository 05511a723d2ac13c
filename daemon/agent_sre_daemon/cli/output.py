"""The one way commands print what they read: a rich table for people, ``--json`` for
machines, and errors on stderr."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from agent_sre_daemon.cli import exits

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from rich.console import Console, RenderableType

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
    print(json.dumps(data, indent=2))


def console() -> Console:
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            # rich exits 1 itself; main() ends every command the same way instead (141)
            self.quiet = True
            raise BrokenPipeError

    return _Console(file=sys.stdout, width=None if sys.stdout.isatty() else WIDTH_WHEN_PIPED)


def fail(message: object, code: int = exits.FAILURE) -> int:
    """Prints ``agent-sre: message`` on stderr and returns ``code``."""
    print(f"agent-sre: {message}", file=sys.stderr)
    return code
