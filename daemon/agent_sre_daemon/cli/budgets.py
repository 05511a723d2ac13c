"""``agent-sre budgets`` and ``agent-sre agents``: spend and agents of a running daemon."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from agent_sre_daemon.cli.client import AdminError, get_json

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin_default = os.environ.get("AGENT_SRE_ADMIN", "127.0.0.1:8791")
    budgets = subparsers.add_parser("budgets", help="budgets and spend of a running daemon")
    budgets.add_argument("--admin", default=admin_default, help="admin API host:port")
    budgets.add_argument("--json", action="store_true", help="print the API's JSON")
    budgets.set_defaults(func=cmd_budgets)
    agents = subparsers.add_parser("agents", help="agents seen by the proxy, and blocks")
    agents.add_argument("--admin", default=admin_default, help="admin API host:port")
    agents.add_argument("--json", action="store_true", help="print the API's JSON")
    agents.set_defaults(func=cmd_agents)


def _fetch(args: argparse.Namespace, path: str) -> Any | None:
    try:
        return get_json(args.admin, path)
    except AdminError as exc:
        print(f"agent-sre: {exc}", file=sys.stderr)
        return None


def cmd_budgets(args: argparse.Namespace) -> int:
    return _show(args, "/v1/budgets", _budgets_table)


def cmd_agents(args: argparse.Namespace) -> int:
    return _show(args, "/v1/agents", _agents_table)


def _show(args: argparse.Namespace, path: str, table: Callable[[Any], Table]) -> int:
    """Prints what the admin API answers at ``path``: its JSON with ``--json``, else a table."""
    data = _fetch(args, path)
    if data is None:
        return 1
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        Console().print(table(data))
    return 0


def _budgets_table(data: Any) -> Table:
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


def _agents_table(data: Any) -> Table:
    rows = data.get("agents", data if isinstance(data, list) else [])
    table = Table(title="agents")
    for column in ("agent", "requests", "denied", "cost $", "blocked"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row.get("agent_id")),
            str(row.get("requests", 0)),
            str(row.get("denied", 0)),
            f"{float(row.get('cost_usd') or 0.0):.6f}",
            "yes" if row.get("blocked") else "",
        )
    return table
