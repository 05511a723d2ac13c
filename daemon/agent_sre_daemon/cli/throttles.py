"""``agent-sre throttles [list] | put AGENT --rpm N --for 10m | lift AGENT``: the throttles in
force on a running daemon (``/v1/throttles``), put on by rules or by hand, and putting them
on and lifting them by hand (changes need ``$AGENT_SRE_ADMIN_TOKEN``)."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import math
import urllib.parse
from datetime import datetime, timezone
from typing import Any

from rich.table import Table

from agent_sre.incidents.throttles import DEFAULT_FOR, DEFAULT_RPM
from agent_sre.units import format_duration
from agent_sre_daemon.cli import exits, output
from agent_sre_daemon.cli.client import (
    AdminClient,
    AdminError,
    add_admin_option,
    seconds_ago,
    show_get,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    throttles = sub.add_parser(
        "throttles",
        help="agents throttled on a running daemon, and throttling by hand",
        description="Lists the throttles in force (GET /v1/throttles): the agent, its pace, "
        "since and until when, and who put it on (a rule of an incident, or an operator).",
    )
    add_admin_option(throttles)
    output.add_json_option(throttles)
    throttles.set_defaults(func=cmd_list)
    commands = throttles.add_subparsers(title="commands")
    listing = commands.add_parser("list", help="every throttle in force (the default)")
    listing.set_defaults(func=cmd_list)
    put = commands.add_parser(
        "put", help="throttle an agent by hand (needs the admin token; replaces its throttle)"
    )
    put.add_argument("agent_id", metavar="AGENT")
    put.add_argument(
        "--rpm",
        type=_above_zero,
        default=DEFAULT_RPM,
        metavar="N",
        help=f"requests a minute let through (default {DEFAULT_RPM:g})",
    )
    put.add_argument(
        "--for",
        dest="lasting",
        type=seconds_ago,
        default=DEFAULT_FOR,
        metavar="DURATION",
        help=f"how long it holds: 10m, 1h30m or seconds (default {format_duration(DEFAULT_FOR)})",
    )
    put.set_defaults(func=cmd_put)
    lift = commands.add_parser("lift", help="lift an agent's throttle (needs the admin token)")
    lift.add_argument("agent_id", metavar="AGENT")
    lift.set_defaults(func=cmd_lift)
    for command in (put, lift):
        command.add_argument(
            "--by", default=None, metavar="NAME", help="who does it, for the log (default: you)"
        )
    for command in (listing, put, lift):
        add_admin_option(command)
        output.add_json_option(command)


def cmd_list(args: argparse.Namespace) -> int:
    return show_get(args, throttles_table, "/v1/throttles")


def cmd_put(args: argparse.Namespace) -> int:
    if args.lasting <= 0:
        return output.fail("throttles put: --for must be longer than 0", exits.USAGE)
    body = {
        "agent_id": args.agent_id,
        "requests_per_minute": args.rpm,
        "for": args.lasting,
        "by": _who(args),
    }
    try:
        data = AdminClient.from_args(args).post("/v1/throttles", body)
    except AdminError as exc:
        return output.fail(exc)
    return _done(args, data)


def cmd_lift(args: argparse.Namespace) -> int:
    path = f"/v1/throttles/{urllib.parse.quote(args.agent_id, safe='')}"
    try:
        data = AdminClient.from_args(args).delete(path, {"by": _who(args)})
    except AdminError as exc:
        return output.fail(exc)
    return _done(args, data)


def _done(args: argparse.Namespace, data: Any) -> int:
    if args.json:
        output.print_json(data)
    else:
        output.say(data.get("message", ""))
    return exits.OK


def _who(args: argparse.Namespace) -> str:
    if args.by is not None:
        return str(args.by)
    with contextlib.suppress(Exception):  # no user name to be had: the daemon says operator
        return getpass.getuser()
    return ""


def _above_zero(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number above 0, not {text}")
    return value


def throttles_table(data: Any) -> Table:
    rows = data.get("throttles", []) if isinstance(data, dict) else []
    table = Table(title=f"throttles ({len(rows)})", title_justify="left")
    for column in ("AGENT", "REQUESTS/MIN", "SINCE (UTC)", "UNTIL (UTC)", "LEFT", "BY"):
        table.add_column(column, overflow="fold")
    for row in rows:
        left = row.get("left_seconds")
        table.add_row(
            str(row.get("agent_id", "")),
            f"{float(row.get('requests_per_minute') or 0):g}",
            _time(row.get("since")),
            _time(row.get("until")),
            _left(left),
            str(row.get("by", "")),
        )
    return table


def _left(seconds: Any) -> str:
    """``1h2m3s`` (whole seconds, rounded up); empty for what is not a number."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return ""
    whole = math.ceil(max(0.0, seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"


def _time(at: Any) -> str:
    if isinstance(at, (int, float)) and not isinstance(at, bool):
        return datetime.fromtimestamp(at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return "" if at is None else str(at)
