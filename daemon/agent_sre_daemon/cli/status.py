"""``agent-sre status`` and ``agent-sre reload``: a running daemon as a whole."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_sre_daemon.cli import exits, output
from agent_sre_daemon.cli.client import AdminClient, AdminError, add_admin_option

if TYPE_CHECKING:
    import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = sub.add_parser("status", help="a running daemon's status, as JSON")
    add_admin_option(status)
    status.set_defaults(func=cmd_status)

    reload = sub.add_parser(
        "reload", help="make a running daemon re-read its configuration (admin token)"
    )
    add_admin_option(reload)
    reload.set_defaults(func=cmd_reload)


def cmd_status(args: argparse.Namespace) -> int:
    try:
        data = AdminClient.from_args(args).get("/v1/status")
    except AdminError as exc:
        return output.fail(exc)
    # The status is a nested document: it prints as JSON for people and machines alike.
    output.print_json(data)
    return exits.OK


def cmd_reload(args: argparse.Namespace) -> int:
    try:
        data = AdminClient.from_args(args).post("/v1/reload")
    except AdminError as exc:
        return output.fail(exc)
    output.say(data.get("message", "configuration reloaded") if isinstance(data, dict) else data)
    return exits.OK
