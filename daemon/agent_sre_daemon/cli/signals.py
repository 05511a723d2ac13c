"""``agent-sre signals``: recent signals of a running daemon (SLO status changes, budget
thresholds and refusals, cost anomalies, export failures, ...), from ``GET /v1/signals``."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from rich.table import Table

from agent_sre_daemon.cli import output
from agent_sre_daemon.cli.client import (
    add_admin_option,
    add_since_option,
    show_get,
    since_param,
)

if TYPE_CHECKING:
    import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    signals = sub.add_parser(
        "signals",
        help="recent signals of a running daemon",
        description="Lists recent signals (GET /v1/signals), oldest first.",
    )
    add_since_option(signals, "signals")
    signals.add_argument("--type", default="", help="only signals of this type")
    signals.add_argument("--source", default="", help="only signals from this source")
    add_admin_option(signals)
    output.add_json_option(signals)
    signals.set_defaults(func=cmd_signals)


def cmd_signals(args: argparse.Namespace) -> int:
    query = {"type": args.type, "source": args.source}
    query["since"] = since_param(args)
    return show_get(args, signals_table, "/v1/signals", query)


def signals_table(data: Any) -> Table:
    rows = data.get("signals", []) if isinstance(data, dict) else []
    table = Table(title=f"signals ({len(rows)})", title_justify="left")
    for column in ("AT (UTC)", "TYPE", "SOURCE", "SEVERITY", "STATE", "VALUE", "LABELS",
                   "MESSAGE"):  # fmt: skip
        table.add_column(column, overflow="fold")
    for signal in rows:
        labels = signal.get("labels") or {}
        value = signal.get("value")
        table.add_row(
            _time(signal.get("at")),
            str(signal.get("type", "")),
            str(signal.get("source", "")),
            str(signal.get("severity", "")),
            str(signal.get("state", "")),
            "" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value),
            ", ".join(f"{key}={val}" for key, val in sorted(labels.items())),
            str(signal.get("message", "")),
        )
    return table


def _time(at: Any) -> str:
    if isinstance(at, (int, float)) and not isinstance(at, bool):
        return datetime.fromtimestamp(at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return "" if at is None else str(at)
