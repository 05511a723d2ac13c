"""``agent-sre run``: the daemon itself."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING, Any

from agent_sre_daemon.cli import exits
from agent_sre_daemon.cli.configfile import CONFIG_HELP, config_path, load_for_run
from agent_sre_daemon.logs import configure_logging

if TYPE_CHECKING:
    import argparse
    from collections.abc import Coroutine

LOG_LEVEL_ENV = "AGENT_SRE_LOG_LEVEL"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", help=CONFIG_HELP)
    run.add_argument("--ready-file", help="write the bound addresses here as JSON once ready")
    run.add_argument("--log-level", default=os.environ.get(LOG_LEVEL_ENV, "info"))
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    path = config_path(args.config)
    loaded = load_for_run(path)
    if loaded is None:
        print("agent-sre: invalid configuration (above); not started", file=sys.stderr)
        return exits.USAGE
    from agent_sre_daemon.node import Node
    from agent_sre_daemon.stores.errors import StoreStartError

    node = Node(
        loaded.config, config_path=path, ready_file=args.ready_file, config_digest=loaded.digest
    )
    try:
        return run_loop(node.run())
    except StoreStartError as exc:
        print(f"agent-sre: cannot start: {exc}", file=sys.stderr)
        return exits.FAILURE


def run_loop(main: Coroutine[Any, Any, int]) -> int:
    """Runs the daemon on uvloop where it is installed, else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.run(main)
    result: int = uvloop.run(main)
    return result
