"""The SLO commands: ``slo list`` and ``slo show`` (read a running daemon's admin API),
``slo check`` (a CI gate), ``slo import`` and ``slo export`` (OpenSLO, Sloth, Pyrra) and
``rules prometheus`` (rules for a fleet's Prometheus)."""

from __future__ import annotations

import os
import sys
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from agent_sre.config import Config, ConfigError, load_config
from agent_sre.slo.compare import compare_slo_sets
from agent_sre.slo.interchange import FORMATS, detect, export_documents, import_documents, written
from agent_sre.slo.rules import generate_prometheus_rules, rules_yaml
from agent_sre.slo.spec import SLOSpec, slo_set_problems
from agent_sre_daemon.cli import exits, output
from agent_sre_daemon.cli.client import AdminClient, AdminError, add_admin_option, show_get

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from rich.console import RenderableType


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ``slo list|show|check`` and ``rules prometheus`` to the ``agent-sre`` command."""
    slo = sub.add_parser("slo", help="SLO tools")
    slo.set_defaults(func=_usage(slo))
    slo_commands = slo.add_subparsers(title="slo commands")
    listing = slo_commands.add_parser("list", help="every SLO of a running daemon")
    show = slo_commands.add_parser("show", help="one SLO of a running daemon in detail")
    show.add_argument("name", metavar="NAME")
    for command, handler in ((listing, cmd_slo_list), (show, cmd_slo_show)):
        add_admin_option(command)
        output.add_json_option(command)
        command.set_defaults(func=handler)
    check = slo_commands.add_parser(
        "check",
        help="fail when an SLO was removed or its target lowered (a CI gate)",
        description=(
            "Compares the SLOs of two configuration files (or files of slos: [...]). "
            "Exit 1 when an SLO of OLD is missing from NEW or has a lower target in NEW, "
            "2 when a file is invalid."
        ),
    )
    check.add_argument("old", metavar="OLD", help="the SLOs before the change")
    check.add_argument("new", metavar="NEW", help="the SLOs after the change")
    check.set_defaults(func=cmd_slo_check)

    imports = slo_commands.add_parser(
        "import",
        help="SLOs of OpenSLO v1, Sloth or Pyrra documents as this daemon's slos:",
        description=(
            "Reads OpenSLO v1 (SLO, SLI, AlertPolicy; multi-document), Sloth (prometheus/v1, "
            "PrometheusServiceLevel) and Pyrra (ServiceLevelObjective) files and prints the "
            "equivalent slos: section. What cannot be mapped is named per SLO on stderr, and "
            "the exit is 1 unless --partial is given; nothing is guessed."
        ),
    )
    imports.add_argument("files", metavar="FILE", nargs="+")
    imports.add_argument("--output", "-o", help="write the slos: section here")
    imports.add_argument(
        "--partial", action="store_true", help="exit 0 with the SLOs that mapped, the rest named"
    )
    imports.set_defaults(func=cmd_slo_import)
    export = slo_commands.add_parser(
        "export",
        help="this daemon's SLOs as OpenSLO, Sloth or Pyrra documents",
        description=(
            "Writes the configured SLOs with their SLIs as PromQL over "
            "agent_sre_slo_events_total (the series `rules prometheus` sums); "
            "`slo import` reads the result back to the same SLOs."
        ),
    )
    export.add_argument("--format", required=True, choices=FORMATS)
    export.add_argument(
        "--config", help="configuration file (default: $AGENT_SRE_CONFIG or embedded)"
    )
    export.add_argument("--output", "-o", help="write the documents here instead of stdout")
    export.set_defaults(func=cmd_slo_export)

    rules = sub.add_parser("rules", help="generate rules for other systems")
    rules.set_defaults(func=_usage(rules))
    rules_commands = rules.add_subparsers(title="rules commands")
    prometheus = rules_commands.add_parser(
        "prometheus",
        help="Prometheus recording and burn-rate alerting rules for the configured SLOs",
    )
    prometheus.add_argument(
        "--config", help="configuration file (default: $AGENT_SRE_CONFIG or embedded)"
    )
    prometheus.add_argument("--output", "-o", help="write the rules here instead of stdout")
    prometheus.set_defaults(func=cmd_rules_prometheus)


def _usage(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def show(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return exits.USAGE

    return show


def _load(path: str | None) -> Config | None:
    try:
        config = load_config(path, os.environ)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None
    problems = slo_set_problems(config.slos)
    if problems:
        for problem in problems:
            print(f"{path or '<embedded>'}: {problem}", file=sys.stderr)
        return None
    return config


def _load_slos(path: str) -> list[SLOSpec] | None:
    """The SLOs of a configuration file, or of OpenSLO, Sloth or Pyrra documents (every
    one of which must map)."""
    docs = _documents(path)
    if docs is None:
        return None
    if not any(detect(doc) for doc in docs):
        config = _load(path)
        return None if config is None else list(config.slos)
    imported = import_documents(docs, path)
    for problem in imported.problems:
        print(problem, file=sys.stderr)
    problems = slo_set_problems(imported.slos)
    for problem in problems:
        print(f"{path}: {problem}", file=sys.stderr)
    return None if imported.problems or problems else imported.slos


def _documents(path: str) -> list[Any] | None:
    try:
        text = Path(path).read_text("utf-8")
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
    except yaml.YAMLError as exc:
        print(f"{path}: not YAML: {exc}", file=sys.stderr)
    return None


def cmd_slo_check(args: argparse.Namespace) -> int:
    old, new = _load_slos(args.old), _load_slos(args.new)
    if old is None or new is None:
        return exits.USAGE
    problems = compare_slo_sets(old, new)
    for problem in problems:
        print(problem)
    if problems:
        return exits.FAILURE
    print(f"ok: {len(old)} SLOs before, {len(new)} after; no target lowered")
    return exits.OK


def cmd_slo_import(args: argparse.Namespace) -> int:
    found: list[SLOSpec] = []
    problems: list[str] = []
    for path in args.files:
        docs = _documents(path)
        if docs is None:
            return exits.USAGE
        imported = import_documents(docs, path)
        found += imported.slos
        problems += imported.problems
    problems += slo_set_problems(found)
    for problem in problems:
        print(problem, file=sys.stderr)
    text = yaml.safe_dump({"slos": [written(spec) for spec in found]}, sort_keys=False)
    if not _write(args.output, text):
        return exits.USAGE
    if problems and not args.partial:
        return exits.FAILURE
    return exits.OK


def cmd_slo_export(args: argparse.Namespace) -> int:
    config = _load(args.config or os.environ.get("AGENT_SRE_CONFIG") or None)
    if config is None:
        return exits.USAGE
    docs = export_documents(config.slos, args.format)
    text = yaml.safe_dump_all(docs, sort_keys=False) if docs else ""
    return exits.OK if _write(args.output, text) else exits.USAGE


def _write(path: str | None, text: str) -> bool:
    if not path:
        sys.stdout.write(text)
        return True
    try:
        Path(path).write_text(text, "utf-8")
    except OSError as exc:
        print(f"{path}: cannot write: {exc.strerror or exc}", file=sys.stderr)
        return False
    return True


def cmd_rules_prometheus(args: argparse.Namespace) -> int:
    config = _load(args.config or os.environ.get("AGENT_SRE_CONFIG") or None)
    if config is None:
        return exits.USAGE
    text = rules_yaml(generate_prometheus_rules(config.slos))
    if args.output:
        try:
            Path(args.output).write_text(text, "utf-8")
        except OSError as exc:
            print(f"{args.output}: cannot write: {exc.strerror or exc}", file=sys.stderr)
            return exits.USAGE
    else:
        sys.stdout.write(text)
    return exits.OK


# -- slo list / slo show ------------------------------------------------------------------


def cmd_slo_list(args: argparse.Namespace) -> int:
    return show_get(args, slo_table, "/v1/slos")


def cmd_slo_show(args: argparse.Namespace) -> int:
    try:
        report = AdminClient.from_args(args).get(
            f"/v1/slos/{urllib.parse.quote(args.name, safe='')}"
        )
    except AdminError as exc:
        return output.fail(exc)
    return output.show(args, report, slo_detail)


def slo_table(data: dict[str, Any]) -> RenderableType:
    from rich.table import Table

    table = Table(title="SLOs", title_justify="left")
    for column in ("SLO", "KIND", "TARGET", "WINDOW", "SLI", "BUDGET LEFT", "BURN 1h",
                   "FIRING", "STATUS", "EXHAUSTED IN"):  # fmt: skip
        table.add_column(column, no_wrap=True)
    for report in data.get("slos", []):
        overall = report["overall"]
        period = _window(overall, report["window"])
        firing = sorted({a for i in report["instances"] for a in _firing(i)})
        table.add_row(
            report["name"],
            report["kind"],
            _percent(report["target"]),
            report["window"],
            _percent(period.get("sli")),
            _percent(overall["budget"]["remaining_ratio"], 1),
            _number(_window(overall, "1h").get("burn_rate")),
            ", ".join(firing) or "-",
            report["status"],
            _duration(overall["budget"]["exhaustion_in_s"]),
        )
    return table


def slo_detail(report: dict[str, Any]) -> RenderableType:
    from rich.console import Group
    from rich.table import Table

    parts: list[RenderableType] = []
    labels = ", ".join(report["label_keys"]) or "-"
    head = output.inert(report["name"], style="bold")
    head.append_text(output.inert(f"  {report['status']}"))
    for line in (
        report["description"] or "",
        f"kind {report['kind']}, target {_percent(report['target'])} over {report['window']}, "
        f"labels {labels}" + (" (overflowing)" if report["overflow"] else ""),
    ):
        head.append("\n")
        head.append_text(output.inert(line))
    parts.append(head)
    for instance in report["instances"] or [report["overall"]]:
        budget = instance["budget"]
        title = ", ".join(f"{k}={v}" for k, v in instance["labels"].items()) or "all events"
        windows = Table(title=f"{title}: {instance['status']}", title_justify="left")
        for column in ("WINDOW", "GOOD", "TOTAL", "SLI", "BURN RATE"):
            windows.add_column(column, justify="right", no_wrap=True)
        for window in instance["windows"]:
            windows.add_row(
                window["window"],
                str(window["good"]),
                str(window["total"]),
                _percent(window["sli"]),
                _number(window["burn_rate"]),
            )
        parts.append(windows)
        parts.append(
            f"budget left {_percent(budget['remaining_ratio'], 1)} "
            f"({budget['bad']} bad of {budget['total']}, {_number(budget['allowed_bad'])} "
            f"allowed); exhausted in {_duration(budget['exhaustion_in_s'])}"
        )
        alerts = Table(show_header=True)
        for column in ("ALERT", "FACTOR", "LONG BURN", "SHORT BURN", "FIRING"):
            alerts.add_column(column, no_wrap=True)
        for alert in instance["alerts"]:
            alerts.add_row(
                f"{alert['severity']} {alert['long_window']}/{alert['short_window']}",
                _number(alert["factor"]),
                _number(alert["long_burn_rate"]),
                _number(alert["short_burn_rate"]),
                "yes" if alert["firing"] else "no",
            )
        if instance["alerts"]:
            parts.append(alerts)
    return Group(*parts)


def _window(instance: dict[str, Any], name: str) -> dict[str, Any]:
    for window in instance["windows"]:
        if window["window"] == name:
            return dict(window)
    return {}


def _firing(instance: dict[str, Any]) -> list[str]:
    return [alert["name"] for alert in instance["alerts"] if alert["firing"]]


def _percent(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds <= 0:
        return "now"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            parts.append(f"{int(seconds // size)}{unit}")
            seconds %= size
    return " ".join(parts[:2]) or "<1m"
