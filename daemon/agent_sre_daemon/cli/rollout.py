"""``agent-sre rollout list|status NAME|promote|pause|resume|abort|delete NAME``: the rollouts
of a running daemon, and their control (changes need ``$AGENT_SRE_ADMIN_TOKEN``)."""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

from rich.table import Table

from agent_sre_daemon.cli import exits, output
from agent_sre_daemon.cli.client import AdminClient, AdminError, add_admin_option, show_get

if TYPE_CHECKING:
    import argparse

OPERATIONS = {
    "promote": "move to the next step (or promote from the last)",
    "pause": "hold the current step (analysis still rolls back)",
    "resume": "continue a paused rollout",
    "abort": "send every call back to the baseline",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rollout = sub.add_parser("rollout", help="rollouts of a running daemon, and their control")
    commands = rollout.add_subparsers(title="rollout commands")
    listing = commands.add_parser("list", help="every rollout: phase, step, weight")
    listing.set_defaults(func=cmd_list)
    status = commands.add_parser("status", help="one rollout: steps, analysis, events")
    status.add_argument("name", metavar="NAME")
    status.set_defaults(func=cmd_status)
    parsers = [listing, status]
    for operation, text in OPERATIONS.items():
        command = commands.add_parser(operation, help=text)
        command.add_argument("name", metavar="NAME")
        command.set_defaults(func=cmd_operate, operation=operation)
        parsers.append(command)
    delete = commands.add_parser(
        "delete", help="forget a rollout posted to the API (a running one is aborted first)"
    )
    delete.add_argument("name", metavar="NAME")
    delete.set_defaults(func=cmd_delete)
    parsers.append(delete)
    for parser in parsers:
        add_admin_option(parser)
        output.add_json_option(parser)
    rollout.set_defaults(func=lambda args: output.fail("give a rollout command", exits.USAGE))


def cmd_list(args: argparse.Namespace) -> int:
    return show_get(args, list_table, "/v1/rollouts")


def cmd_status(args: argparse.Namespace) -> int:
    return show_get(args, status_table, f"/v1/rollouts/{_quoted(args.name)}")


def cmd_operate(args: argparse.Namespace) -> int:
    path = f"/v1/rollouts/{_quoted(args.name)}/{args.operation}"
    try:
        data = AdminClient.from_args(args).post(path, {})
    except AdminError as exc:
        return output.fail(exc)
    if args.json:
        output.print_json(data)
    else:
        output.say(f"rollout {data['name']}: {_where(data)}")
    return exits.OK


def cmd_delete(args: argparse.Namespace) -> int:
    try:
        data = AdminClient.from_args(args).delete(f"/v1/rollouts/{_quoted(args.name)}")
    except AdminError as exc:
        return output.fail(exc)
    if args.json:
        output.print_json(data)
    else:
        output.say(data["message"])
    return exits.OK


def _quoted(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _where(data: Any) -> str:
    steps = len(data.get("steps", []))
    return f"{data['phase']}, step {data['step'] + 1}/{steps}, candidate {data['weight']:g}%"


def list_table(data: Any) -> Table:
    table = Table(title="rollouts")
    for column in ("rollout", "route", "vary", "candidate", "phase", "step", "weight", "verdict"):
        table.add_column(column)
    for r in data.get("rollouts", []):
        table.add_row(
            r["name"],
            r["route"],
            r["vary"] + (" (shadow)" if r["mode"] == "shadow" else ""),
            r["candidate"],
            r["phase"],
            f"{r['step'] + 1}/{len(r['steps'])}",
            f"{r['weight']:g}%",
            str((r.get("analysis") or {}).get("verdict", "-")),
        )
    return table


def status_table(data: Any) -> Table:
    table = Table(title=f"rollout {data['name']}: {_where(data)}")
    for column in ("check", "verdict", "baseline", "canary", "n base", "n canary", "why"):
        table.add_column(column)
    for check in (data.get("current_analysis") or {}).get("checks", []):
        table.add_row(
            check["metric"],
            check["verdict"],
            _number(check.get("baseline")),
            _number(check.get("canary")),
            str(check["baseline_samples"]),
            str(check["canary_samples"]),
            check.get("reason", ""),
        )
    for event in data.get("events", [])[-5:]:
        table.add_row("event", event["kind"], "", "", "", "", event["message"])
    return table


def _number(value: Any) -> str:
    return "-" if value is None else f"{float(value):.6g}"
