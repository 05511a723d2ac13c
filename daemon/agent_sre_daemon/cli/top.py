"""``agent-sre top``: a live terminal view of a running daemon (agents, SLOs, budgets, open
incidents), read from the admin API like every other command, for a node without a browser.

On a terminal it redraws every ``--interval`` seconds until ``q`` (or Ctrl-C); without one
(``kubectl exec`` without ``-t``, a pipe, a file) or with ``--once`` it prints one frame and
exits, so nothing depends on a screen it cannot have. Every value shown comes from clients
(agent ids, SLO label values, incident titles): it is shown as plain text, control
characters and markup included, never interpreted.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from agent_sre_daemon.cli import exits, output
from agent_sre_daemon.cli.client import AdminClient, AdminError, add_admin_option
from agent_sre_daemon.clock import SYSTEM_CLOCK

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator

    from rich.console import Console, RenderableType
    from rich.table import Table
    from rich.text import Text

DEFAULT_INTERVAL = 2.0
MIN_INTERVAL = 0.2
MAX_INTERVAL = 3600.0
MAX_TEXT = 80
"""Longest value shown in a cell (agent ids, labels, titles), cut with ``~``."""
SECTIONS = ("agents", "slos", "budgets", "incidents")
PATHS = {
    "agents": ("/v1/agents", {}),
    "slos": ("/v1/slos", {}),
    "budgets": ("/v1/budgets", {}),
    "incidents": ("/v1/incidents", {"state": "open"}),
}
STATUS_ORDER = {"EXHAUSTED": 0, "CRITICAL": 1, "WARNING": 2, "HEALTHY": 3}
STATUS_STYLE = {"EXHAUSTED": "bold red", "CRITICAL": "red", "WARNING": "yellow", "HEALTHY": "green"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    top = sub.add_parser(
        "top",
        help="a live view of a running daemon: agents, SLOs, budgets, open incidents",
        description="Redraws every --interval seconds; q quits. Without a terminal (or with "
        "--once) prints one view and exits.",
    )
    top.add_argument(
        "-n",
        "--interval",
        type=_interval,
        default=DEFAULT_INTERVAL,
        metavar="SECONDS",
        help=f"seconds between refreshes (default {DEFAULT_INTERVAL:g})",
    )
    top.add_argument("--once", action="store_true", help="print one view and exit")
    top.add_argument(
        "--rows",
        type=_rows,
        default=0,
        metavar="N",
        help="rows per table (default: what fits the terminal, 10 without one)",
    )
    add_admin_option(top)
    top.set_defaults(func=cmd_top)


def _interval(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not MIN_INTERVAL <= value <= MAX_INTERVAL:  # NaN fails both
        raise argparse.ArgumentTypeError(f"between {MIN_INTERVAL:g} and {MAX_INTERVAL:g}")
    return value


def _rows(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError("between 1 and 1000")
    return value


# -- reading ---------------------------------------------------------------------------------


@dataclass
class Snapshot:
    """What one refresh read: each section's answer, or why it could not be read."""

    at: float
    data: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def unreachable(self) -> bool:
        return len(self.errors) == len(SECTIONS)


def read(client: AdminClient) -> Snapshot:
    snapshot = Snapshot(at=SYSTEM_CLOCK.time())
    for section in SECTIONS:
        path, query = PATHS[section]
        try:
            answer = client.get(path, query)
        except AdminError as exc:
            snapshot.errors[section] = str(exc)
            continue
        if not isinstance(answer, dict):
            snapshot.errors[section] = f"{path}: not a JSON object"
            continue
        snapshot.data[section] = answer
    return snapshot


# -- drawing ---------------------------------------------------------------------------------


def plain(value: Any, limit: int = MAX_TEXT) -> Text:
    """``value`` as inert text: control characters (escape sequences) shown as ``?``,
    markup not parsed, cut to ``limit`` characters."""
    from rich.text import Text

    text = value if isinstance(value, str) else "" if value is None else str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "~"
    cleaned = "".join("?" if unicodedata.category(c) in ("Cc", "Cf") else c for c in text)
    return Text(cleaned)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value == value and abs(value) != float("inf") else None


def _list(data: Any, key: str) -> list[dict[str, Any]]:
    rows = data.get(key) if isinstance(data, dict) else None
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


def _dict(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _percent(value: Any, digits: int = 1) -> str:
    number = _number(value)
    return "-" if number is None else f"{number * 100:.{digits}f}%"


def _usd(value: Any) -> str:
    number = _number(value)
    return "-" if number is None else f"{number:.4f}"


def _bar(share: float | None, width: int = 12) -> Text:
    from rich.text import Text

    if share is None:
        return Text("-")
    filled = max(0, min(width, round(share * width)))
    style = "red" if share >= 1 else "yellow" if share >= 0.8 else "green"
    return Text("#" * filled, style=style) + Text("." * (width - filled), style="dim")


def _table(title: str, columns: tuple[str, ...], shown: int, total: int) -> Table:
    from rich.table import Table

    more = f" (top {shown} of {total})" if shown < total else f" ({total})"
    table = Table(title=plain(title + more), title_justify="left", title_style="bold")
    for column in columns:
        table.add_column(column, no_wrap=True, overflow="ellipsis")
    return table


def slos_table(data: Any, rows: int) -> Table:
    reports = _list(data, "slos")

    def severity(report: dict[str, Any]) -> tuple[int, float]:
        overall = _dict(report, "overall")
        budget = _dict(overall, "budget")
        left = _number(budget.get("remaining_ratio"))
        return STATUS_ORDER.get(str(report.get("status")), 4), 1.0 if left is None else left

    reports.sort(key=severity)
    table = _table(
        "SLOs, worst first",
        ("SLO", "STATUS", "TARGET", "BUDGET LEFT", "BURN 1h", "FIRING", "GOOD/TOTAL"),
        min(rows, len(reports)),
        len(reports),
    )
    for report in reports[:rows]:
        overall = _dict(report, "overall")
        budget = _dict(overall, "budget")
        windows = _list(overall, "windows")
        hour = next((w for w in windows if w.get("window") == "1h"), {})
        burn = _number(hour.get("burn_rate"))
        firing = sorted(
            {
                str(a.get("name"))
                for i in _list(report, "instances")
                for a in _list(i, "alerts")
                if a.get("firing") is True
            }
        )
        status = plain(report.get("status"))
        status.stylize(STATUS_STYLE.get(status.plain, ""))
        table.add_row(
            plain(report.get("name")),
            status,
            _percent(report.get("target"), 2),
            _percent(budget.get("remaining_ratio")),
            "-" if burn is None else f"{burn:.3g}",
            plain(", ".join(firing) or "-"),
            plain(
                f"{overall.get('events_good', '-')}/"
                f"{_sum(overall.get('events_good'), overall.get('events_bad'))}"
            ),
        )
    return table


def _sum(*values: Any) -> str:
    numbers = [_number(v) for v in values]
    return "-" if None in numbers else f"{sum(n for n in numbers if n is not None):g}"


def budgets_table(data: Any, rows: int) -> Table:
    lines: list[tuple[float, dict[str, Any], dict[str, Any]]] = []
    for budget in _list(data, "budgets"):
        limit = _number(budget.get("limit_usd"))
        for subject in _list(budget, "subjects") or [{"subject": "-", "spent_usd": 0.0}]:
            spent = _number(subject.get("spent_usd"))
            share = spent / limit if spent is not None and limit else -1.0
            lines.append((share, budget, subject))
    lines.sort(key=lambda line: -line[0])
    table = _table(
        "Budgets, closest to the limit first",
        ("BUDGET", "SUBJECT", "WINDOW", "SPENT $", "LIMIT $", "USED", ""),
        min(rows, len(lines)),
        len(lines),
    )
    for share, budget, subject in lines[:rows]:
        table.add_row(
            plain(budget.get("name")),
            plain(subject.get("subject")),
            plain(budget.get("window")),
            _usd(subject.get("spent_usd")),
            _usd(budget.get("limit_usd")),
            _percent(share if share >= 0 else None),
            _bar(share if share >= 0 else None),
        )
    return table


def agents_table(data: Any, rows: int) -> Table:
    agents = _list(data, "agents")
    agents.sort(key=lambda a: -(_number(a.get("cost_usd")) or 0.0))
    table = _table(
        "Agents, by spend",
        ("AGENT", "CALLS", "DENIED", "COST $", "BLOCKED"),
        min(rows, len(agents)),
        len(agents),
    )
    for agent in agents[:rows]:
        blocked = plain(agent.get("blocked_reason") or "yes") if agent.get("blocked") else ""
        table.add_row(
            plain(agent.get("agent_id")),
            plain(agent.get("requests", 0)),
            plain(agent.get("denied", 0)),
            _usd(agent.get("cost_usd")),
            blocked,
        )
    return table


def incidents_table(data: Any, rows: int) -> Table:
    incidents = _list(data, "incidents")
    table = _table(
        "Open incidents, newest first",
        ("ID", "SEVERITY", "STATE", "OPENED (UTC)", "TITLE"),
        min(rows, len(incidents)),
        len(incidents),
    )
    _keep_whole(table)
    for incident in incidents[:rows]:
        table.add_row(
            plain(incident.get("id")),
            plain(incident.get("severity")),
            plain(incident.get("state")),
            _time(incident.get("opened_at")),
            plain(incident.get("title"), 300),
        )
    return table


def _keep_whole(table: Table) -> None:
    """The first columns (short: ids, states, times) keep their width when the terminal is
    narrow; the last one (a title) takes what is left and is the one cut."""
    table.expand = True
    table.columns[-1].ratio = 1


def _time(at: Any) -> str:
    number = _number(at)
    if number is None:
        return "-"
    try:
        return datetime.fromtimestamp(number, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return "-"


DRAW = {
    "slos": slos_table,
    "budgets": budgets_table,
    "agents": agents_table,
    "incidents": incidents_table,
}
ORDER = ("slos", "budgets", "agents", "incidents")


def frame(snapshot: Snapshot, address: str, rows: int, live: bool) -> RenderableType:
    """One view of ``snapshot``."""
    from rich.console import Group
    from rich.text import Text

    header = Text.assemble(
        ("agent-sre top", "bold"),
        "  ",
        plain(address),
        "  ",
        datetime.fromtimestamp(snapshot.at, tz=timezone.utc).strftime("%H:%M:%S UTC"),
        ("   q quits" if live else "", "dim"),
    )
    parts: list[RenderableType] = [header]
    for section in ORDER:
        if section in snapshot.errors:
            parts.append(
                Text.assemble((f"{section}: ", "bold red"), plain(snapshot.errors[section], 300))
            )
        else:
            parts.append(DRAW[section](snapshot.data[section], rows))
    return Group(*parts)


def _fitting_rows(console: Console) -> int:
    """Rows per table so the four fit the terminal (each table has about 5 lines besides)."""
    return max(2, (console.size.height - 1 - 4 * 5) // 4)


# -- the command -----------------------------------------------------------------------------


def cmd_top(args: argparse.Namespace) -> int:
    client = AdminClient.from_args(args)
    console = output.console()
    live = not args.once and sys.stdin.isatty() and sys.stdout.isatty()
    if not live:
        snapshot = read(client)
        console.print(frame(snapshot, client.address, args.rows or 10, live=False))
        if snapshot.unreachable:
            return output.fail(snapshot.errors["agents"])
        return exits.OK
    return _run_live(client, console, args.interval, args.rows)


def _run_live(client: AdminClient, console: Console, interval: float, rows: int) -> int:
    from rich.live import Live

    with _keys() as pressed, Live(console=console, screen=True, auto_refresh=False) as view:
        while True:
            snapshot = read(client)
            view.update(
                frame(snapshot, client.address, rows or _fitting_rows(console), True), refresh=True
            )
            deadline = SYSTEM_CLOCK.monotonic() + interval
            while (left := deadline - SYSTEM_CLOCK.monotonic()) > 0:
                if pressed(left) in ("q", "Q"):
                    return exits.OK
    return exits.OK  # Ctrl-C


@contextlib.contextmanager
def _keys() -> Iterator[Any]:
    """Single key presses from the terminal (no Enter needed), the terminal restored after;
    yields ``pressed(timeout)`` -> the key, or "" when none came in time. Ctrl-C quits."""
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def pressed(timeout: float) -> str:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return ""
        key = os.read(fd, 1)
        return "q" if key in (b"", b"\x03") else key.decode("latin-1")  # EOF: gone, quit

    try:
        yield pressed
    except KeyboardInterrupt:
        pass
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
