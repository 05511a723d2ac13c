"""``agent-sre budgets`` and ``agent-sre agents [blocked | block|unblock ID]``: spend and
agents of a running daemon, the agents blocked, and its kill switch."""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

from rich.table import Table

from agent_sre_daemon.cli import exits, output
from agent_sre_daemon.cli.client import AdminClient, AdminError, add_admin_option, show_get

if TYPE_CHECKING:
    import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    budgets = sub.add_parser("budgets", help="budgets and spend of a running daemon")
    add_admin_option(budgets)
    output.add_json_option(budgets)
    budgets.set_defaults(func=cmd_budgets)

    agents = sub.add_parser("agents", help="agents seen by the proxy, and the kill switch")
    add_admin_option(agents)
    output.add_json_option(agents)
    agents.set_defaults(func=cmd_agents)
    switch = agents.add_subparsers(
        title="kill switch (block and unblock need $AGENT_SRE_ADMIN_TOKEN)"
    )
    blocked = switch.add_parser(
        "blocked", help="the agents blocked, with the reasons (fleet-wide with Redis)"
    )
    add_admin_option(blocked)
    output.add_json_option(blocked)
    blocked.set_defaults(func=cmd_blocked)
    block = switch.add_parser("block", help="refuse every call of an agent")
    block.add_argument("agent_id", metavar="AGENT_ID")
    block.add_argument("--reason", default="", help="kept with the block")
    unblock = switch.add_parser("unblock", help="lift an agent's block")
    unblock.add_argument("agent_id", metavar="AGENT_ID")
    for command, action in ((block, "block"), (unblock, "unblock")):
        add_admin_option(command)
        output.add_json_option(command)
        command.set_defaults(func=cmd_kill_switch, action=action)


def cmd_budgets(args: argparse.Namespace) -> int:
    return show_get(args, budgets_table, "/v1/budgets")


def cmd_agents(args: argparse.Namespace) -> int:
    return show_get(args, agents_table, "/v1/agents")


def cmd_blocked(args: argparse.Namespace) -> int:
    return show_get(args, blocked_table, "/v1/agents/blocked")


def cmd_kill_switch(args: argparse.Namespace) -> int:
    agent = urllib.parse.quote(args.agent_id, safe="")
    body = {"reason": args.reason} if getattr(args, "reason", "") else {}
    try:
        data = AdminClient.from_args(args).post(f"/v1/agents/{agent}/{args.action}", body)
    except AdminError as exc:
        return output.fail(exc)
    if args.json:
        output.print_json(data)
    else:
        output.say(f"agent {args.agent_id}: {'blocked' if data.get('blocked') else 'not blocked'}")
    return exits.OK


def budgets_table(data: Any) -> Table:
    table = Table(title=f"budgets (store: {data.get('store', '?')})")
    for column in ("budget", "scope", "window", "subject", "spent $", "limit $", "left", "action"):
        table.add_column(column, justify="right" if "$" in column or column == "left" else "left")
    for budget in data.get("budgets", []):
        subjects = budget.get("subjects") or [{"subject": "-", "spent_usd": 0.0}]
        for subject in subjects:
            spent = float(subject.get("spent_usd", 0.0))
            limit = float(budget["limit_usd"])
            table.add_row(
                budget["name"],
                budget["scope"],
                budget["window"],
                str(subject["subject"]),
                f"{spent:.6f}",
                f"{limit:.6f}",
                f"{max(0.0, 1 - spent / limit):.1%}",
                budget["action"],
            )
    return table


def agents_table(data: Any) -> Table:
    rows = data.get("agents", []) if isinstance(data, dict) else data
    table = Table(title="agents")
    for column in ("agent", "requests", "denied", "cost $", "blocked"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row.get("agent_id")),
            str(row.get("requests", 0)),
            str(row.get("denied", 0)),
            f"{float(row.get('cost_usd') or 0.0):.6f}",
            f"yes: {row.get('blocked_reason') or ''}".rstrip(": ") if row.get("blocked") else "",
        )
    return table


def blocked_table(data: Any) -> Table:
    rows = data.get("blocked", []) if isinstance(data, dict) else []
    table = Table(title=f"agents blocked ({len(rows)}; store: {data.get('store', '?')})")
    for column in ("agent", "reason"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(str(row.get("agent_id")), str(row.get("reason") or ""))
    return table
