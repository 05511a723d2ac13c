"""``agent-sre incidents list|show|ack|resolve|postmortem|dead-letters``: the incidents of a
running daemon (``/v1/incidents``), acknowledging and resolving them, postmortem drafts, and
the notifications given up on (``/v1/notifications/dead``)."""

from __future__ import annotations

import urllib.parse
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from agent_sre.incidents.model import Incident
from agent_sre.incidents.postmortem import postmortem
from agent_sre_daemon.cli import exits, output
from agent_sre_daemon.cli.client import AdminClient, AdminError, add_admin_option, show_get
from agent_sre_daemon.clock import SYSTEM_CLOCK

if TYPE_CHECKING:
    import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    incidents = sub.add_parser(
        "incidents",
        help="incidents of a running daemon",
        description="Lists incidents (GET /v1/incidents), newest first.",
    )
    incidents.add_argument(
        "--state", choices=("all", "open", "resolved"), default="all", help="which ones"
    )
    add_admin_option(incidents)
    output.add_json_option(incidents)
    incidents.set_defaults(func=cmd_list)
    commands = incidents.add_subparsers(title="commands")
    listing = commands.add_parser("list", help="list incidents (the default)")
    listing.add_argument("--state", choices=("all", "open", "resolved"), default="all")
    listing.set_defaults(func=cmd_list)
    show = commands.add_parser("show", help="one incident with its timeline")
    show.set_defaults(func=cmd_show)
    ack = commands.add_parser("ack", help="acknowledge an incident (needs the admin token)")
    ack.set_defaults(func=cmd_change, what="ack")
    resolve = commands.add_parser("resolve", help="resolve an incident (needs the admin token)")
    resolve.set_defaults(func=cmd_change, what="resolve")
    draft = commands.add_parser("postmortem", help="write a postmortem draft in Markdown")
    draft.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    draft.set_defaults(func=cmd_postmortem)
    dead = commands.add_parser(
        "dead-letters",
        help="notifications given up on (refused, redirected, undelivered too long, or for "
        "a receiver no longer configured), newest first",
    )
    dead.add_argument("--receiver", metavar="NAME", help="only those of this receiver")
    dead.set_defaults(func=cmd_dead_letters)
    for command in (show, ack, resolve, draft):
        command.add_argument("incident_id", metavar="ID")
    for command in (listing, show, ack, resolve, draft, dead):
        add_admin_option(command)
        output.add_json_option(command)


def _path(incident_id: str, tail: str = "") -> str:
    return f"/v1/incidents/{urllib.parse.quote(incident_id, safe='')}{tail}"


def cmd_list(args: argparse.Namespace) -> int:
    return show_get(args, incidents_table, "/v1/incidents", {"state": args.state})


def cmd_show(args: argparse.Namespace) -> int:
    return show_get(args, incident_table, _path(args.incident_id))


def cmd_dead_letters(args: argparse.Namespace) -> int:
    query = {"receiver": args.receiver} if args.receiver else None
    return show_get(args, dead_letters_table, "/v1/notifications/dead", query)


def cmd_change(args: argparse.Namespace) -> int:
    try:
        data = AdminClient.from_args(args).post(_path(args.incident_id, f"/{args.what}"))
    except AdminError as exc:
        return output.fail(exc)
    if args.json:
        output.print_json(data)
    else:
        output.say(f"incident {data.get('id')}: {data.get('state')}")
    return exits.OK


def cmd_postmortem(args: argparse.Namespace) -> int:
    try:
        data = AdminClient.from_args(args).get(_path(args.incident_id))
        text = postmortem(Incident.from_dict(data), SYSTEM_CLOCK.time())
    except AdminError as exc:
        return output.fail(exc)
    except (KeyError, ValueError, TypeError) as exc:
        return output.fail(f"the daemon sent an incident this command cannot read: {exc}")
    if args.output:
        try:
            Path(args.output).write_text(text)
        except OSError as exc:
            return output.fail(f"cannot write {args.output}: {exc.strerror or exc}")
        output.say(f"postmortem of {args.incident_id} written to {args.output}")
    else:
        output.say(text, end="")
    return exits.OK


def incidents_table(data: Any) -> Table:
    rows = data.get("incidents", []) if isinstance(data, dict) else []
    table = Table(title=f"incidents ({len(rows)})", title_justify="left")
    for column in ("ID", "STATE", "SEVERITY", "OPENED (UTC)", "SIGNALS", "AGENTS", "SLOS",
                   "TITLE"):  # fmt: skip
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            str(row.get("id", "")),
            str(row.get("state", "")),
            str(row.get("severity", "")),
            _time(row.get("opened_at")),
            str(row.get("signals", "")),
            ", ".join(row.get("agents") or []),
            ", ".join(row.get("slos") or []),
            str(row.get("title", "")),
        )
    return table


def incident_table(data: Any) -> Table:
    title = f"{data.get('id')} {data.get('state')} ({data.get('severity')}): {data.get('title')}"
    table = Table(title=title, title_justify="left")
    for column in ("AT (UTC)", "WHAT", "MESSAGE"):
        table.add_column(column, overflow="fold")
    for entry in data.get("timeline", []):
        table.add_row(_time(entry.get("at")), str(entry.get("kind")), str(entry.get("message")))
    return table


def dead_letters_table(data: Any) -> Table:
    rows = data.get("dead_letters", []) if isinstance(data, dict) else []
    limit = data.get("limit", "?") if isinstance(data, dict) else "?"
    table = Table(title=f"dead letters ({len(rows)}, kept up to {limit})", title_justify="left")
    for column in ("ID", "RECEIVER", "REASON", "GIVEN UP (UTC)", "ROUNDS", "ERROR"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            str(row.get("id", "")),
            str(row.get("receiver", "")),
            str(row.get("reason", "")),
            _time(row.get("dead_at")),
            str(row.get("attempts", "")),
            str(row.get("error", "")),
        )
    return table


def _time(at: Any) -> str:
    if isinstance(at, (int, float)) and not isinstance(at, bool):
        return datetime.fromtimestamp(at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return "" if at is None else str(at)
