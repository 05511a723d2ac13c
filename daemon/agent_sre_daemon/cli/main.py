"""The ``agent-sre`` command: each command group is a module with ``register(sub)``,
listed once in :data:`COMMANDS`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from agent_sre import __version__
from agent_sre_daemon.cli import exits
from agent_sre_daemon.cli.client import ADMIN_ENV, DEFAULT_ADMIN

COMMANDS = (
    "run",
    "configfile",
    "status",
    "top",
    "slo",
    "budgets",
    "signals",
    "rollout",
    "incidents",
    "throttles",
    "chaos",
    "replay",
    "fleet",
    "certify",
    "k8s",
    "agentkeys",
    "k8soperator",
)
"""Modules of ``agent_sre_daemon.cli`` holding commands, in the order ``--help`` lists them.
Each has ``register(sub)`` adding its parsers; a new engine's commands are one line here."""


def main(argv: list[str] | None = None) -> int:
    """Runs one command; every command prints through here, so a reader that goes away early
    (``| head``) ends it quietly with :data:`exits.BROKEN_PIPE`, never a traceback."""
    try:
        try:
            return _run(argv)
        finally:  # what is still buffered fails here, not in the interpreter's last flush
            sys.stdout.flush()
    except BrokenPipeError:
        # Nothing more can reach the reader; point stdout at /dev/null so the interpreter's
        # own flush at exit has nowhere to fail either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return exits.BROKEN_PIPE


def _run(argv: list[str] | None) -> int:
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
        "2 bad usage or bad configuration, 141 the reader of the output went away (| head).",
    )
    parser.add_argument("--version", action="version", version=f"agent-sre {__version__}")
    parser.add_argument(
        "--admin",
        metavar="HOST:PORT",
        help=f"admin API of the daemon the commands talk to (default: ${ADMIN_ENV} or "
        f"{DEFAULT_ADMIN})",
    )
    sub = parser.add_subparsers(title="commands")
    for name in COMMANDS:
        importlib.import_module(f"agent_sre_daemon.cli.{name}").register(sub)
    return parser


if __name__ == "__main__":
    sys.exit(main())
