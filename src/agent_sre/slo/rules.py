"""Prometheus recording and multiwindow alerting rules for the same SLOs, fleet-wide.

Every daemon exports ``agent_sre_slo_events_total{slo,result="good|bad",<labels>}``; these
rules sum it across nodes, so a Prometheus scraping the fleet computes each SLO over all of
its traffic. Names follow Sloth (``slo:sli_error:ratio_rate5m``, ``slo:error_budget:ratio``,
``slo:period_error_budget_remaining:ratio``, ...). Unlike Sloth, the period error ratio is
the exact event ratio over the window, not an average of 5m ratios.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from agent_sre.slo.alerts import burn_rate_windows
from agent_sre.slo.report import CURRENT_WINDOW
from agent_sre.slo.spec import prometheus_label_name, slo_set_problems
from agent_sre.units import format_duration

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agent_sre.slo.spec import SLOSpec

EVENTS_METRIC = "agent_sre_slo_events_total"
ALERT_NAME = "AgentSREErrorBudgetBurn"


def _number(value: float) -> str:
    return format(value, ".12g")


def sli_error_record(window: str) -> str:
    """``slo:sli_error:ratio_rate5m`` for ``5m``."""
    return f"slo:sli_error:ratio_rate{window}"


def generate_prometheus_rules(specs: Sequence[SLOSpec]) -> dict[str, Any]:
    """A Prometheus rule file (as data, ready for YAML) with, per SLO, a group of SLI error
    ratios per window, a group of budget and burn-rate records, and a group of alerts.

    Raises:
        ValueError: when two SLOs share a name.
    """
    problems = slo_set_problems(specs)
    if problems:
        raise ValueError("; ".join(problems))
    groups: list[dict[str, Any]] = []
    for spec in specs:
        groups.extend(_slo_groups(spec))
    return {"groups": groups}


def _slo_groups(spec: SLOSpec) -> list[dict[str, Any]]:
    name = spec.name
    selector = f'slo="{name}"'
    by = ", ".join(["slo", *(prometheus_label_name(k) for k in spec.labels)])
    alerts = burn_rate_windows(spec)
    windows = {CURRENT_WINDOW, spec.window}
    for alert in alerts:
        windows.update((alert.long_s, alert.short_s))
    period = format_duration(spec.window)
    budget = _number(spec.error_budget)

    sli_rules = []
    for seconds in sorted(windows):
        window = format_duration(seconds)
        total = f"sum by ({by}) (increase({EVENTS_METRIC}{{{selector}}}[{window}]))"
        bad = f'sum by ({by}) (increase({EVENTS_METRIC}{{{selector},result="bad"}}[{window}]))'
        sli_rules.append(
            {
                "record": sli_error_record(window),
                "expr": f"(\n  {bad}\n  or\n  0 * {total}\n)\n/\n{total}\n",
                "labels": {"slo": name, "window": window},
            }
        )

    def per_slo(record: str) -> str:
        return f"sum without (window) ({record}{{{selector}}})"

    meta_rules: list[dict[str, Any]] = [
        {"record": "slo:objective:ratio", "expr": f"vector({_number(spec.target)})"},
        {"record": "slo:error_budget:ratio", "expr": f"vector({budget})"},
        {"record": "slo:time_period:days", "expr": f"vector({_number(spec.window / 86400)})"},
    ]
    meta_rules += [
        {
            "record": "slo:current_burn_rate:ratio",
            "expr": f"{per_slo(sli_error_record(format_duration(CURRENT_WINDOW)))} / {budget}",
        },
        {
            "record": "slo:period_burn_rate:ratio",
            "expr": f"{per_slo(sli_error_record(period))} / {budget}",
        },
        {
            "record": "slo:period_error_budget_remaining:ratio",
            "expr": f"1 - slo:period_burn_rate:ratio{{{selector}}}",
        },
    ]
    for rule in meta_rules:
        rule["labels"] = {"slo": name}  # static, so rules of different SLOs never collide

    alert_rules = []
    for alert in alerts:
        limit = f"({_number(alert.factor)} * {budget})"
        expr = (
            f"(\n  {per_slo(sli_error_record(alert.long))} > {limit}\n)\nand\n"
            f"(\n  {per_slo(sli_error_record(alert.short))} > {limit}\n)\n"
        )
        alert_rules.append(
            {
                "alert": ALERT_NAME,
                "expr": expr,
                "labels": {
                    "slo": name,
                    "severity": alert.severity,
                    "long_window": alert.long,
                    "short_window": alert.short,
                },
                "annotations": {
                    "summary": (
                        f"SLO {name} is burning its error budget faster than "
                        f"{_number(alert.factor)}x over {alert.long} and {alert.short}"
                    ),
                    "description": (
                        f"SLO {name} (target {_number(spec.target)} over {period}): the error "
                        f"ratio over both the last {alert.long} and the last {alert.short} is "
                        f"above {_number(alert.factor)}x the error budget ({budget})."
                    ),
                },
            }
        )

    groups: list[dict[str, Any]] = [
        {"name": f"agent-sre-slo-{name}-sli-recordings", "rules": sli_rules},
        {"name": f"agent-sre-slo-{name}-meta-recordings", "rules": meta_rules},
    ]
    if alert_rules:
        groups.append({"name": f"agent-sre-slo-{name}-alerts", "rules": alert_rules})
    return groups


def rules_yaml(rules: dict[str, Any]) -> str:
    """Renders a rule file as YAML, with multi-line expressions as literal blocks."""

    class _Dumper(yaml.SafeDumper):
        pass

    def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _str)
    text: str = yaml.dump(rules, Dumper=_Dumper, sort_keys=False, width=1000)
    return text
