"""The ``agent-sre`` command: each command group is a module with ``register(sub)``,
listed once in :data:`COMMANDS`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from agent_sre import __version__
from agent_sre_daemon.cli import budgets, configfile, exits, run, signals, slo, status
from agent_sre_daemon.cli.client import ADMIN_ENV, DEFAULT_ADMIN

if TYPE_CHECKING:
    from types import ModuleType

COMMANDS: tuple[ModuleType, ...] = (run, configfile, status, slo, budgets, signals)
"""A new engine's commands are one module here (``register(sub)`` adds its parsers)."""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return exits.USAGE
    code: int = args.func(args)
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agent-sre",
        description="Reliability daemon for AI agents.",
        epilog="Exit status: 0 ok, 1 failed (daemon unreachable, API error, check failed), "
        "2 bad usage or bad configuration.",
    )
    parser.add_argument("--version", action="version", version=f"agent-sre {__version__}")
    parser.add_argument(
        "--admin",
        metavar="HOST:PORT",
        help=f"admin API of the daemon the commands talk to (default: ${ADMIN_ENV} or "
        f"{DEFAULT_ADMIN})",
    )
    sub = parser.add_subparsers(title="commands")
    for module in COMMANDS:
        module.register(sub)
    return parser


if __name__ == "__main__":
    sys.exit(main())
