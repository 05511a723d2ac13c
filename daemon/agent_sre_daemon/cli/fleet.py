"""``agent-sre fleet`` and ``agent-sre fleet agents [AGENT]``: the fleet as a running daemon
sees it (``/v1/fleet``): nodes, SLOs summed exactly across them, agents everywhere."""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from agent_sre_daemon.cli import output
from agent_sre_daemon.cli.client import add_admin_option, show_get

if TYPE_CHECKING:
    import argparse

    from rich.console import RenderableType


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fleet = sub.add_parser(
        "fleet",
        help="every node and agent of the fleet (GET /v1/fleet)",
        description="The fleet as a running daemon sees it: nodes (up, stale, version skew), "
        "SLO attainment summed exactly across the nodes, agents, incidents, rollouts.",
    )
    add_admin_option(fleet)
    output.add_json_option(fleet)
    fleet.set_defaults(func=cmd_fleet)
    commands = fleet.add_subparsers(title="commands")
    agents = commands.add_parser(
        "agents", help="agents across the fleet, or one agent everywhere (AGENT)"
    )
    agents.add_argument("agent", nargs="?", metavar="AGENT", help="one agent in detail")
    agents.add_argument("-q", "--search", default="", help="agents whose id holds this")
    agents.add_argument("--limit", type=int, default=100, help="at most this many (1-500)")
    agents.add_argument("--offset", type=int, default=0, help="skip this many")
    add_admin_option(agents)
    output.add_json_option(agents)
    agents.set_defaults(func=cmd_agents)


def cmd_fleet(args: argparse.Namespace) -> int:
    return show_get(args, fleet_view, "/v1/fleet")


def cmd_agents(args: argparse.Namespace) -> int:
    if args.agent:
        path = "/v1/fleet/agents/" + urllib.parse.quote(args.agent, safe="")
        return show_get(args, agent_view, path)
    query = {"q": args.search, "limit": str(args.limit), "offset": str(args.offset)}
    return show_get(args, agents_table, "/v1/fleet/agents", query)


def _pct(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value * 100:.3f}%"
    return "-"


def fleet_view(data: Any) -> RenderableType:
    if not isinstance(data, dict):
        return Text(str(data))
    store = data.get("store") or {}
    covers = data.get("covers") or {}
    down = "" if store.get("ok", True) else f", DOWN: {store.get('error')}"
    skew = ""
    if data.get("version_skew"):
        skew = "; VERSION SKEW " + ", ".join(data.get("versions") or [])
    head = (
        f"scope {data.get('scope')} (store {store.get('kind')}{down}); "
        f"{covers.get('nodes', 0)} nodes ({covers.get('up', 0)} up, {covers.get('stale', 0)} "
        f"stale){skew}; generated {data.get('generated_at')}"
    )
    nodes = Table(title="nodes", title_justify="left")
    for column in ("NODE", "VERSION", "STATE", "AGE S", "HEALTH", "AGENTS", "SLOS",
                   "INCIDENTS", "EXPERIMENTS", "ROLLOUTS"):  # fmt: skip
        nodes.add_column(column, overflow="fold")
    for n in data.get("nodes") or []:
        nodes.add_row(
            str(n.get("node")), str(n.get("version")), str(n.get("state")),
            str(n.get("age_seconds")), str(n.get("health")), str(n.get("agents")),
            str(n.get("slos")), str(n.get("open_incidents")), str(n.get("experiments")),
            str(n.get("rollouts")),
        )  # fmt: skip
    slos = Table(title="SLOs (summed across the nodes)", title_justify="left")
    for column in ("SLO", "TARGET", "WINDOW", "GOOD", "TOTAL", "ATTAINMENT", "BUDGET LEFT",
                   "STATUS", "NODES"):  # fmt: skip
        slos.add_column(column, overflow="fold")
    for s in data.get("slos") or []:
        slos.add_row(
            str(s.get("name")), str(s.get("target")), str(s.get("window")), str(s.get("good")),
            str(s.get("total")), _pct(s.get("attainment")),
            _pct(s.get("error_budget_remaining")), str(s.get("status")), str(s.get("nodes")),
        )  # fmt: skip
    agents = data.get("agents") or {}
    parts: list[RenderableType] = [Text(head), nodes, slos, agents_table(agents)]
    incidents = data.get("incidents") or []
    if incidents:
        table = Table(title=f"open incidents ({len(incidents)})", title_justify="left")
        for column in ("ID", "NODE", "SEVERITY", "OPENED", "TITLE"):
            table.add_column(column, overflow="fold")
        for i in incidents:
            table.add_row(str(i.get("id")), str(i.get("node")), str(i.get("severity")),
                          str(i.get("opened_at")), str(i.get("title")))  # fmt: skip
        parts.append(table)
    return Group(*parts)


def agents_table(data: Any) -> Table:
    items = data.get("items", []) if isinstance(data, dict) else []
    total = data.get("total", len(items)) if isinstance(data, dict) else len(items)
    table = Table(title=f"agents ({len(items)} of {total})", title_justify="left")
    for column in ("AGENT", "VERSIONS", "NODES", "LAST SEEN", "CALLS", "ERRORS", "COST USD"):
        table.add_column(column, overflow="fold")
    for a in items:
        table.add_row(
            str(a.get("agent")), ", ".join(a.get("versions") or []),
            ", ".join(a.get("nodes") or []), str(a.get("last_seen")), str(a.get("calls")),
            str(a.get("errors")), f"{a.get('cost_usd', 0):.4f}",
        )  # fmt: skip
    return table


def agent_view(data: Any) -> RenderableType:
    if not isinstance(data, dict):
        return Text(str(data))
    head = Text(
        f"agent {data.get('agent')}: versions {', '.join(data.get('versions') or []) or '-'}; "
        f"spend ${data.get('spend_usd', 0):.4f}"
    )
    nodes = Table(title="nodes", title_justify="left")
    for column in ("NODE", "VERSIONS", "LAST SEEN", "CALLS", "ERRORS", "COST USD"):
        nodes.add_column(column, overflow="fold")
    for n in data.get("nodes") or []:
        nodes.add_row(str(n.get("node")), ", ".join(n.get("versions") or []),
                      str(n.get("last_seen")), str(n.get("calls")), str(n.get("errors")),
                      f"{n.get('cost_usd', 0):.4f}")  # fmt: skip
    slos = Table(title="SLOs (this agent, summed across the nodes)", title_justify="left")
    for column in ("SLO", "TARGET", "GOOD", "TOTAL", "ATTAINMENT", "STATUS", "NODES"):
        slos.add_column(column, overflow="fold")
    for s in data.get("slos") or []:
        slos.add_row(str(s.get("name")), str(s.get("target")), str(s.get("good")),
                     str(s.get("total")), _pct(s.get("attainment")), str(s.get("status")),
                     str(s.get("nodes")))  # fmt: skip
    incidents = Table(title="open incidents", title_justify="left")
    for column in ("ID", "NODE", "SEVERITY", "TITLE"):
        incidents.add_column(column, overflow="fold")
    for i in data.get("incidents") or []:
        incidents.add_row(str(i.get("id")), str(i.get("node")), str(i.get("severity")),
                          str(i.get("title")))  # fmt: skip
    return Group(head, nodes, slos, incidents)
