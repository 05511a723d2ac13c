"""``agent-sre chaos list|start|stop|status|report``: a running daemon's chaos experiments.

Starting and stopping need ``$AGENT_SRE_ADMIN_TOKEN``; ``stop --all`` is the big red button.
"""

from __future__ import annotations

import urllib.parse
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table

from agent_sre_daemon.cli import exits, output
from agent_sre_daemon.cli.client import AdminClient, AdminError, add_admin_option, show_get

if TYPE_CHECKING:
    import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    chaos = sub.add_parser(
        "chaos",
        help="chaos experiments of a running daemon",
        description="Lists, starts and stops chaos experiments and shows their results.",
    )
    commands = chaos.add_subparsers(title="commands")

    listing = commands.add_parser("list", help="declared experiments and their state")
    listing.set_defaults(func=cmd_list)
    status = commands.add_parser("status", help="whether chaos is on and what runs now")
    status.set_defaults(func=cmd_status)
    start = commands.add_parser("start", help="start an experiment (needs the admin token)")
    start.add_argument("name", metavar="EXPERIMENT")
    start.set_defaults(func=cmd_start)
    stop = commands.add_parser("stop", help="stop an experiment, or --all of them")
    stop.add_argument("name", metavar="EXPERIMENT", nargs="?")
    stop.add_argument("--all", action="store_true", help="stop every experiment at once")
    stop.set_defaults(func=cmd_stop)
    report = commands.add_parser("report", help="results of runs (the latest first)")
    report.add_argument("run_id", metavar="RUN_ID", nargs="?", help="one run in detail")
    report.add_argument("--experiment", default="", help="only runs of this experiment")
    report.add_argument("--limit", default="20", help="runs listed (default 20)")
    report.set_defaults(func=cmd_report)
    for command in (listing, status, start, stop, report):
        add_admin_option(command)
        output.add_json_option(command)


def cmd_list(args: argparse.Namespace) -> int:
    return show_get(args, experiments_table, "/v1/chaos")


def cmd_status(args: argparse.Namespace) -> int:
    try:
        data = AdminClient.from_args(args).get("/v1/chaos")
    except AdminError as exc:
        return output.fail(exc)
    summary = {
        "enabled": data.get("enabled"),
        "allow_header_faults": data.get("allow_header_faults"),
        "running": [e["run"] for e in data.get("experiments", []) if e.get("run")],
    }
    return output.show(args, summary, status_view)


def cmd_start(args: argparse.Namespace) -> int:
    try:
        run = AdminClient.from_args(args).post(f"/v1/chaos/experiments/{_quote(args.name)}/start")
    except AdminError as exc:
        return output.fail(exc)
    if args.json:
        output.print_json(run)
    else:
        output.say(f"started {run['experiment']}: run {run['id']} for {run['duration']:g}s")
    return exits.OK


def cmd_stop(args: argparse.Namespace) -> int:
    if bool(args.all) == bool(args.name):
        return output.fail("give an experiment to stop, or --all", exits.USAGE)
    client = AdminClient.from_args(args)
    try:
        if args.all:
            stopped = client.post("/v1/chaos/stop")["stopped"]
        else:
            stopped = [client.post(f"/v1/chaos/experiments/{_quote(args.name)}/stop")]
    except AdminError as exc:
        return output.fail(exc)
    if args.json:
        output.print_json({"stopped": stopped})
    elif stopped:
        for run in stopped:
            output.say(f"stopped {run['experiment']} (run {run['id']})")
    else:
        output.say("nothing was running")
    return exits.OK


def cmd_report(args: argparse.Namespace) -> int:
    client = AdminClient.from_args(args)
    try:
        if args.run_id:
            data = client.get(f"/v1/chaos/runs/{_quote(args.run_id)}")
            return output.show(args, data, run_view)
        data = client.get("/v1/chaos/runs", {"experiment": args.experiment, "limit": args.limit})
    except AdminError as exc:
        return output.fail(exc)
    return output.show(args, data, runs_table)


# -- rendering ---------------------------------------------------------------------------


def experiments_table(data: Any) -> Table:
    state = "enabled" if data.get("enabled") else "DISABLED (nothing is injected)"
    rows = data.get("experiments", [])
    table = Table(title=f"chaos experiments ({len(rows)}), chaos {state}", title_justify="left")
    for column in ("NAME", "STATE", "FAULTS", "TARGETS", "DURATION", "RUN"):
        table.add_column(column, overflow="fold")
    for experiment in rows:
        spec = experiment.get("config", {})
        faults = ", ".join(f"{f['type']}@{f['probability']:g}" for f in spec.get("faults", []))
        targets = {k: v for k, v in spec.get("targets", {}).items() if v not in ([], 1.0)}
        run = experiment.get("run") or {}
        table.add_row(
            experiment.get("name", ""),
            experiment.get("state", ""),
            faults,
            ", ".join(f"{k}={v}" for k, v in targets.items()) or "every call",
            f"{spec.get('duration', 0):g}s",
            run.get("id", ""),
        )
    return table


def status_view(data: Any) -> Table:
    table = Table(
        title=f"chaos {'enabled' if data.get('enabled') else 'disabled'}; header faults "
        f"{'allowed' if data.get('allow_header_faults') else 'off'}",
        title_justify="left",
    )
    for column in ("EXPERIMENT", "STATE", "RUN", "STARTED (UTC)", "TARGETED", "FAULTS"):
        table.add_column(column, overflow="fold")
    for run in data.get("running", []):
        table.add_row(
            run["experiment"],
            run["state"],
            run["id"],
            _time(run.get("started_at")),
            str(run.get("calls_targeted", 0)),
            _faults(run),
        )
    return table


def runs_table(data: Any) -> Table:
    rows = data.get("runs", [])
    table = Table(title=f"chaos runs ({len(rows)})", title_justify="left")
    for column in ("RUN", "EXPERIMENT", "STATE", "STARTED (UTC)", "TARGETED", "FAULTS",
                   "RECOVERED", "SCORE", "REASON"):  # fmt: skip
        table.add_column(column, overflow="fold")
    for run in rows:
        table.add_row(*_run_row(run))
    return table


def run_view(run: Any) -> Group:
    summary = runs_table({"runs": [run]})
    slis = Table(title="targeted traffic", title_justify="left")
    for column in ("PHASE", "CALLS", "ERRORS", "SLI", "SPEND (USD)"):
        slis.add_column(column)
    for phase, counts in (run.get("sli") or {}).items():
        sli = counts.get("sli")
        slis.add_row(
            phase,
            str(counts.get("calls", 0)),
            str(counts.get("errors", 0)),
            "" if sli is None else f"{sli:.4f}",
            f"{counts.get('spend_usd', 0):.6f}",
        )
    parts: list[Any] = [summary, slis]
    if run.get("message"):
        parts.append(f"{run.get('reason') or run.get('state')}: {run['message']}")
    return Group(*parts)


def _run_row(run: dict[str, Any]) -> list[str]:
    ttr = run.get("time_to_recover_s")
    score = run.get("resilience_score")
    return [
        str(run.get("id", "")),
        str(run.get("experiment", "")),
        str(run.get("state", "")),
        _time(run.get("started_at")),
        str(run.get("calls_targeted", 0)),
        _faults(run),
        "" if ttr is None else f"{ttr:.1f}s",
        "" if score is None else f"{score:g}",
        str(run.get("reason", "")),
    ]


def _faults(run: dict[str, Any]) -> str:
    faults = run.get("faults_injected") or {}
    return ", ".join(f"{kind}={count}" for kind, count in sorted(faults.items())) or "0"


def _time(at: Any) -> str:
    if isinstance(at, (int, float)) and not isinstance(at, bool):
        return datetime.fromtimestamp(at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return ""


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")
