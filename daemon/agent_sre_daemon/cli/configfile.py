"""``agent-sre validate FILE`` and ``agent-sre schema``, and loading the configuration for
every command that reads it (``$AGENT_SRE_CONFIG`` is read here only)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from agent_sre.config import ConfigError, ConfigFile, config_json_schema, read_config
from agent_sre_daemon.cli import exits, output
from agent_sre_daemon.cli.preflight import runtime_problems

if TYPE_CHECKING:
    import argparse

CONFIG_ENV = "AGENT_SRE_CONFIG"
CONFIG_HELP = f"configuration file (default: ${CONFIG_ENV} or the embedded default)"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    validate = sub.add_parser(
        "validate", help="check a configuration file as `run` would (exit 2 when it is bad)"
    )
    validate.add_argument("file")
    validate.set_defaults(func=cmd_validate)

    schema = sub.add_parser("schema", help="print the configuration's JSON Schema")
    schema.set_defaults(func=cmd_schema)


def config_path(given: str | None) -> str | None:
    """The file a command reads: the one given, else ``$AGENT_SRE_CONFIG``, else None (the
    embedded default)."""
    return given or os.environ.get(CONFIG_ENV) or None


def load_for_run(path: str | None) -> ConfigFile | None:
    """Loads ``path`` and checks it against this machine; prints every problem
    (``file:line: field: message``) on stderr and returns None when there is one."""
    try:
        loaded = read_config(path, os.environ)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None
    problems = [loaded.problem(loc, message) for loc, message in runtime_problems(loaded.config)]
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return None
    return loaded


def cmd_validate(args: argparse.Namespace) -> int:
    loaded = load_for_run(args.file)
    if loaded is None:
        return exits.USAGE
    config = loaded.config
    print(f"{args.file}: ok ({len(config.slos)} SLOs, {len(config.proxy.routes)} proxy routes)")
    return exits.OK


def cmd_schema(args: argparse.Namespace) -> int:
    output.print_json(config_json_schema())
    return exits.OK
