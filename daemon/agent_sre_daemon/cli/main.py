"""The ``agent-sre`` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from agent_sre import __version__
from agent_sre.config import ConfigError, config_json_schema, load_config
from agent_sre_daemon.cli import budgets as cli_budgets
from agent_sre_daemon.cli import slo as cli_slo
from agent_sre_daemon.cli.client import AdminError, get_json

if TYPE_CHECKING:
    from collections.abc import Coroutine

EXIT_OK = 0
EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return EXIT_USAGE
    code: int = args.func(args)
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agent-sre", description="Reliability daemon for AI agents."
    )
    parser.add_argument("--version", action="version", version=f"agent-sre {__version__}")
    sub = parser.add_subparsers(title="commands")

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", help="configuration file (default: $AGENT_SRE_CONFIG or embedded)")
    run.add_argument("--ready-file", help="write the bound addresses here as JSON once ready")
    run.add_argument("--log-level", default=os.environ.get("AGENT_SRE_LOG_LEVEL", "info"))
    run.set_defaults(func=cmd_run)

    validate = sub.add_parser("validate", help="validate a configuration file")
    validate.add_argument("file")
    validate.set_defaults(func=cmd_validate)

    schema = sub.add_parser("schema", help="print the configuration's JSON Schema")
    schema.set_defaults(func=cmd_schema)

    status = sub.add_parser("status", help="show a running daemon's status (admin API)")
    status.add_argument("--admin", default=os.environ.get("AGENT_SRE_ADMIN", "127.0.0.1:8791"))
    status.set_defaults(func=cmd_status)

    cli_slo.register(sub)
    cli_budgets.register(sub)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    path = args.config or os.environ.get("AGENT_SRE_CONFIG") or None
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"agent-sre: invalid configuration:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    from agent_sre_daemon.node import Node
    from agent_sre_daemon.stores.errors import StoreStartError

    node = Node(config, config_path=path, ready_file=args.ready_file)
    try:
        return run_loop(node.run())
    except StoreStartError as exc:
        print(f"agent-sre: cannot start: {exc}", file=sys.stderr)
        return 1


def run_loop(main: Coroutine[Any, Any, int]) -> int:
    """Runs the daemon on uvloop where it is installed, else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.run(main)
    result: int = uvloop.run(main)
    return result


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    print(f"{args.file}: ok ({len(config.slos)} SLOs, {len(config.proxy.routes)} proxy routes)")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(config_json_schema(), indent=2))
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    try:
        data = get_json(args.admin, "/v1/status")
    except AdminError as exc:
        print(f"agent-sre: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(data, indent=2))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
