"""Writes the Grafana dashboards (deployments/grafana/*.json) and the Helm chart's copy of them.

    python deployments/render_dashboards.py      # `make manifests` runs it

Each dashboard is declared here as rows of panels over the daemon's metrics (docs/metrics.md)
and the recording rules `agent-sre rules prometheus` writes; this script lays them out and
writes Grafana's dashboard JSON. Every query takes its data source from the `${datasource}`
variable and its targets from `$job` and `$instance` (plus per-dashboard variables), so the
same files work imported by hand and loaded by the Grafana sidecar. tests/deploy checks the
files are current; tests/integration/test_grafana_dashboards.py runs every query against a
real Prometheus scraping a real daemon.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "grafana"
CHART_COPY = HERE / "helm" / "agent-sre" / "dashboards"
SCHEMA_VERSION = 39
"""Grafana's dashboard schema version the files are written in (Grafana 10.4/11)."""
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
TARGET = 'job=~"$job", instance=~"$instance"'
"""The selector every query of the daemon's own metrics carries."""
ALWAYS_THERE = "agent_sre_queue_requests"
"""A series every daemon exports from its start (variables list targets by it)."""


@dataclass
class Query:
    expr: str
    legend: str = ""
    instant: bool = False


@dataclass
class Panel:
    title: str
    queries: list[Query]
    kind: str = "timeseries"
    unit: str = "short"
    width: int = 12
    height: int = 8
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)


@dataclass
class Row:
    title: str
    panels: list[Panel]


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    rows: list[Row]
    variables: list[dict[str, Any]] = field(default_factory=list)
    tags: list[str] = field(default_factory=lambda: ["agent-sre"])


# -- variables ------------------------------------------------------------------------------


def datasource_variable() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "options": [],
        "refresh": 1,
        "regex": "",
    }


def query_variable(name: str, label: str, query: str, multi: bool = True) -> dict[str, Any]:
    """A variable listing a label's values (Grafana's ``label_values``); "All" is ``.*``."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "current": {},
        "hide": 0,
        "includeAll": multi,
        "allValue": ".*" if multi else None,
        "multi": multi,
        "options": [],
        "refresh": 2,
        "regex": "",
        "sort": 1,
    }


def target_variables() -> list[dict[str, Any]]:
    return [
        datasource_variable(),
        query_variable("job", "Job", f"label_values({ALWAYS_THERE}, job)"),
        query_variable(
            "instance", "Instance", f'label_values({ALWAYS_THERE}{{job=~"$job"}}, instance)'
        ),
    ]


def adhoc_variable() -> dict[str, Any]:
    """Filters on any label (an SLO's own labels: ``agent_id``, ``route``...), applied by
    Grafana to every query of the dashboard."""
    return {
        "name": "filters",
        "label": "Filters",
        "type": "adhoc",
        "datasource": DATASOURCE,
        "filters": [],
        "hide": 0,
    }


# -- dashboards -----------------------------------------------------------------------------


def rate(metric: str, by: str, extra: str = "") -> str:
    selector = f"{TARGET}, {extra}" if extra else TARGET
    return f"sum by ({by}) (rate({metric}{{{selector}}}[$__rate_interval]))"


def quantile(q: str, metric: str, by: str) -> str:
    return (
        f"histogram_quantile({q}, sum by (le, {by}) "
        f"(rate({metric}_bucket{{{TARGET}}}[$__rate_interval])))"
    )


def share(metric: str, by: str, selector: str, part: str) -> str:
    """The share of ``metric``'s rate matching ``part``: 0 (not nothing) while none does."""
    whole = f"sum by ({by}) (rate({metric}{{{selector}}}[$__rate_interval]))"
    some = f"sum by ({by}) (rate({metric}{{{selector}, {part}}}[$__rate_interval]))"
    return f"({some} or 0 * {whole}) / {whole}"


def node() -> Dashboard:
    ingest = Row(
        "Ingest",
        [
            Panel(
                "Spans accepted /s",
                [
                    Query(
                        rate("agent_sre_receiver_accepted_spans_total", "protocol"), "{{protocol}}"
                    )
                ],
                unit="ops",
                width=8,
            ),
            Panel(
                "Spans refused /s",
                [
                    Query(
                        rate("agent_sre_receiver_refused_spans_total", "protocol, reason"),
                        "{{protocol}} {{reason}}",
                    )
                ],
                unit="ops",
                width=8,
            ),
            Panel(
                "Spans by kind /s",
                [Query(rate("agent_sre_spans_total", "kind"), "{{kind}}")],
                unit="ops",
                width=8,
            ),
        ],
    )
    export = Row(
        "Durable queue and export",
        [
            Panel(
                "Queue depth",
                [
                    Query(
                        f"sum by (instance) (agent_sre_queue_requests{{{TARGET}}})",
                        "{{instance}} requests",
                    )
                ],
                width=6,
            ),
            Panel(
                "Queue size",
                [
                    Query(
                        f"sum by (instance) (agent_sre_queue_size_bytes{{{TARGET}}})",
                        "{{instance}}",
                    )
                ],
                unit="bytes",
                width=6,
            ),
            Panel(
                "Oldest queued request",
                [
                    Query(
                        f"max by (instance) (agent_sre_queue_oldest_age_seconds{{{TARGET}}})",
                        "{{instance}}",
                    )
                ],
                unit="s",
                width=6,
            ),
            Panel(
                "Spans sent upstream /s",
                [
                    Query(
                        f"sum by (instance) (rate(agent_sre_exporter_sent_spans_total{{{TARGET}}}"
                        "[$__rate_interval]))",
                        "{{instance}}",
                    )
                ],
                unit="ops",
                width=6,
            ),
            Panel(
                "Export failures /s",
                [Query(rate("agent_sre_exporter_failed_requests_total", "reason"), "{{reason}}")],
                unit="ops",
                width=12,
                description="Failed send attempts to the upstream (a retried request counts "
                "each time).",
            ),
            Panel(
                "Items dropped /s",
                [
                    Query(
                        rate("agent_sre_dropped_items_total", "signal, reason"),
                        "{{signal}} {{reason}}",
                    )
                ],
                unit="ops",
                width=12,
            ),
        ],
    )
    proxy = Row(
        "Proxy",
        [
            Panel(
                "Proxied calls /s",
                [
                    Query(
                        rate("agent_sre_proxy_requests_total", "route, status"),
                        "{{route}} {{status}}",
                    )
                ],
                unit="reqps",
                width=8,
            ),
            Panel(
                "Call duration",
                [
                    Query(
                        quantile("0.5", "agent_sre_proxy_request_duration_seconds", "route"),
                        "p50 {{route}}",
                    ),
                    Query(
                        quantile("0.99", "agent_sre_proxy_request_duration_seconds", "route"),
                        "p99 {{route}}",
                    ),
                ],
                unit="s",
                width=8,
            ),
            Panel(
                "Latency the proxy adds",
                [
                    Query(
                        quantile("0.5", "agent_sre_proxy_added_latency_seconds", "instance"),
                        "p50 {{instance}}",
                    ),
                    Query(
                        quantile("0.99", "agent_sre_proxy_added_latency_seconds", "instance"),
                        "p99 {{instance}}",
                    ),
                ],
                unit="s",
                width=8,
                description="Time the proxy itself added to a call (before forwarding and "
                "after the upstream answered).",
            ),
            Panel(
                "Time to first token (p95)",
                [
                    Query(
                        quantile("0.95", "agent_sre_proxy_time_to_first_token_seconds", "route"),
                        "{{route}}",
                    )
                ],
                unit="s",
                width=12,
            ),
            Panel(
                "Calls refused before the provider /s",
                [Query(rate("agent_sre_budget_denied_requests_total", "budget"), "{{budget}}")],
                unit="reqps",
                width=12,
            ),
        ],
    )
    process = Row(
        "Process",
        [
            Panel(
                "CPU",
                [
                    Query(
                        f"rate(process_cpu_seconds_total{{{TARGET}}}[$__rate_interval])",
                        "{{instance}}",
                    )
                ],
                unit="percentunit",
                width=6,
                description="CPU seconds per second (1 = one core).",
            ),
            Panel(
                "Resident memory",
                [Query(f"process_resident_memory_bytes{{{TARGET}}}", "{{instance}}")],
                unit="bytes",
                width=6,
            ),
            Panel(
                "Open file descriptors",
                [
                    Query(f"process_open_fds{{{TARGET}}}", "{{instance}} open"),
                    Query(f"process_max_fds{{{TARGET}}}", "{{instance}} limit"),
                ],
                width=6,
            ),
            Panel(
                "Uptime",
                [
                    Query(
                        f"time() - process_start_time_seconds{{{TARGET}}}",
                        "{{instance}}",
                        instant=True,
                    )
                ],
                kind="stat",
                unit="s",
                width=6,
            ),
            Panel(
                "Connections refused at the cap /s",
                [Query(rate("agent_sre_connections_refused_total", "listener"), "{{listener}}")],
                unit="ops",
                width=12,
            ),
            Panel(
                "Signals published /s",
                [Query(rate("agent_sre_signals_total", "source, type"), "{{source}} {{type}}")],
                unit="ops",
                width=12,
            ),
        ],
    )
    return Dashboard(
        "agent-sre-node",
        "agent-sre / Node",
        "One daemon (or all of a job): spans in, the durable queue, export to the upstream, "
        "the proxy's calls and latency, and the process itself.",
        [ingest, export, proxy, process],
        target_variables(),
    )


SLO = f'{TARGET}, slo=~"$slo"'


def slos() -> Dashboard:
    fleet = Row(
        "Fleet-wide (recording rules of `agent-sre rules prometheus`)",
        [
            Panel(
                "Availability over the SLO window",
                [
                    Query(
                        '1 - slo:period_burn_rate:ratio{slo=~"$slo"} * on (slo) group_left '
                        'slo:error_budget:ratio{slo=~"$slo"}',
                        "__auto",
                        instant=True,
                    )
                ],
                kind="stat",
                unit="percentunit",
                width=8,
                defaults={"decimals": 3},
            ),
            Panel(
                "Error budget left",
                [Query('slo:period_error_budget_remaining:ratio{slo=~"$slo"}', "__auto")],
                unit="percentunit",
                width=8,
                description="Share of the error budget left over the SLO window, summed "
                "across every node.",
            ),
            Panel(
                "Burn rate (5m)",
                [Query('slo:current_burn_rate:ratio{slo=~"$slo"}', "__auto")],
                width=8,
                description="1 = spending the budget exactly over the window.",
            ),
            Panel(
                "Burn-rate alerts firing",
                [
                    Query(
                        'ALERTS{alertname="AgentSREErrorBudgetBurn", alertstate="firing", '
                        'slo=~"$slo"}',
                        "{{slo}} {{severity}} {{long_window}}/{{short_window}}",
                    )
                ],
                kind="state-timeline",
                width=24,
                height=6,
                description="The multiwindow alerts of the generated rules (Prometheus' "
                "ALERTS series: empty while none fires).",
            ),
        ],
    )
    node_row = Row(
        "As each daemon sees it",
        [
            Panel(
                "SLI (1h)",
                [Query(f'max by (slo) (agent_sre_slo_sli_ratio{{{SLO}, window="1h"}})', "{{slo}}")],
                unit="percentunit",
                width=8,
            ),
            Panel(
                "Error budget left",
                [
                    Query(
                        f"min by (slo) (agent_sre_slo_error_budget_remaining_ratio{{{SLO}}})",
                        "{{slo}}",
                    )
                ],
                unit="percentunit",
                width=8,
            ),
            Panel(
                "Target",
                [
                    Query(
                        f"max by (slo) (agent_sre_slo_target_ratio{{{SLO}}})",
                        "{{slo}}",
                        instant=True,
                    )
                ],
                kind="stat",
                unit="percentunit",
                width=8,
                defaults={"decimals": 3},
            ),
            Panel(
                "Burn rate by window",
                [
                    Query(
                        f"max by (slo, window) (agent_sre_slo_burn_rate{{{SLO}}})",
                        "{{slo}} {{window}}",
                    )
                ],
                width=12,
            ),
            Panel(
                "Alerts firing",
                [
                    Query(
                        "max by (slo, severity, long_window) "
                        f"(agent_sre_slo_alert_firing{{{SLO}}})",
                        "{{slo}} {{severity}} {{long_window}}",
                    )
                ],
                kind="state-timeline",
                width=12,
            ),
            Panel(
                "Status",
                [
                    Query(
                        f"max by (slo, status) (agent_sre_slo_status{{{SLO}}}) == 1",
                        "{{slo}} {{status}}",
                    )
                ],
                kind="state-timeline",
                width=12,
            ),
            Panel(
                "Events /s",
                [
                    Query(
                        rate("agent_sre_slo_events_total", "slo, result", 'slo=~"$slo"'),
                        "{{slo}} {{result}}",
                    )
                ],
                unit="ops",
                width=12,
            ),
            Panel(
                "Per label: error budget left",
                [Query(f"agent_sre_slo_error_budget_remaining_ratio{{{SLO}}}", "__auto")],
                kind="table",
                unit="percentunit",
                width=24,
                description="Every instance of each SLO (one per value of the labels it "
                "declares); narrow it with the Filters variable.",
            ),
        ],
    )
    incidents = Row(
        "Incidents",
        [
            Panel(
                "Incidents open",
                [
                    Query(
                        f"sum by (severity) (agent_sre_incidents_open{{{TARGET}}})", "{{severity}}"
                    )
                ],
                width=12,
            ),
            Panel(
                "Incidents opened /s",
                [Query(rate("agent_sre_incidents_opened_total", "severity"), "{{severity}}")],
                unit="ops",
                width=12,
            ),
        ],
    )
    return Dashboard(
        "agent-sre-slos",
        "agent-sre / SLOs",
        "Availability, error budget left, burn rates and alerts of each SLO: fleet-wide from "
        "the generated recording rules, and per daemon from its own gauges.",
        [fleet, node_row, incidents],
        [
            *target_variables(),
            query_variable(
                "slo", "SLO", 'label_values(agent_sre_slo_target_ratio{job=~"$job"}, slo)'
            ),
            adhoc_variable(),
        ],
    )


COST = f'{TARGET}, agent=~"$agent", model=~"$model"'


def cost() -> Dashboard:
    spend = Row(
        "Spend",
        [
            Panel(
                "Spend by agent (USD/h)",
                [
                    Query(
                        f"sum by (agent) (rate(agent_sre_llm_cost_usd_total{{{COST}}}"
                        "[$__rate_interval])) * 3600",
                        "{{agent}}",
                    )
                ],
                unit="currencyUSD",
                width=12,
            ),
            Panel(
                "Spend by model (USD/h)",
                [
                    Query(
                        f"sum by (model) (rate(agent_sre_llm_cost_usd_total{{{COST}}}"
                        "[$__rate_interval])) * 3600",
                        "{{model}}",
                    )
                ],
                unit="currencyUSD",
                width=12,
            ),
            Panel(
                "Top agents over the range",
                [
                    Query(
                        f"topk(10, sum by (agent) (increase(agent_sre_llm_cost_usd_total{{{COST}}}"
                        "[$__range])))",
                        "{{agent}}",
                        instant=True,
                    )
                ],
                kind="bargauge",
                unit="currencyUSD",
                width=12,
            ),
            Panel(
                "Tokens /s",
                [
                    Query(
                        f"sum by (model, type) (rate(agent_sre_llm_tokens_total{{{COST}}}"
                        "[$__rate_interval]))",
                        "{{model}} {{type}}",
                    )
                ],
                unit="ops",
                width=12,
            ),
        ],
    )
    budgets = Row(
        "Budgets",
        [
            Panel(
                "Budget used",
                [
                    Query(
                        f"max by (budget) (agent_sre_budget_spent_usd{{{TARGET}}}) / "
                        f"max by (budget) (agent_sre_budget_limit_usd{{{TARGET}}})",
                        "{{budget}}",
                        instant=True,
                    )
                ],
                kind="bargauge",
                unit="percentunit",
                width=12,
                defaults={
                    "min": 0,
                    "max": 1,
                    "thresholds": {
                        "mode": "absolute",
                        "steps": [
                            {"color": "green", "value": None},
                            {"color": "orange", "value": 0.8},
                            {"color": "red", "value": 1},
                        ],
                    },
                },
                description="Spend in the current window of each budget's subject closest "
                "to its limit.",
            ),
            Panel(
                "Spend against limit",
                [
                    Query(
                        f"max by (budget) (agent_sre_budget_spent_usd{{{TARGET}}})",
                        "{{budget}} spent",
                    ),
                    Query(
                        f"max by (budget) (agent_sre_budget_limit_usd{{{TARGET}}})",
                        "{{budget}} limit",
                    ),
                ],
                unit="currencyUSD",
                width=12,
            ),
            Panel(
                "Calls refused by budget /s",
                [Query(rate("agent_sre_budget_denied_requests_total", "budget"), "{{budget}}")],
                unit="reqps",
                width=12,
            ),
            Panel(
                "Calls of unpriced models /s",
                [Query(rate("agent_sre_llm_unpriced_requests_total", "model"), "{{model}}")],
                unit="reqps",
                width=12,
            ),
        ],
    )
    return Dashboard(
        "agent-sre-cost",
        "agent-sre / Cost",
        "LLM spend by agent and model, tokens, and each budget's use against its limit.",
        [spend, budgets],
        [
            *target_variables(),
            query_variable(
                "agent",
                "Agent",
                'label_values(agent_sre_llm_cost_usd_total{job=~"$job"}, agent)',
            ),
            query_variable(
                "model",
                "Model",
                'label_values(agent_sre_llm_cost_usd_total{job=~"$job"}, model)',
            ),
        ],
    )


CHAOS = f'{TARGET}, experiment=~"$experiment"'


def chaos() -> Dashboard:
    row = Row(
        "Experiments",
        [
            Panel(
                "Active",
                [
                    Query(
                        f"max by (experiment) (agent_sre_chaos_experiment_active{{{CHAOS}}})",
                        "{{experiment}}",
                    )
                ],
                kind="state-timeline",
                width=24,
                height=6,
            ),
            Panel(
                "Faults injected /s",
                [
                    Query(
                        rate(
                            "agent_sre_chaos_faults_injected_total",
                            "experiment, fault",
                            'experiment=~"$experiment"',
                        ),
                        "{{experiment}} {{fault}}",
                    )
                ],
                unit="ops",
                width=12,
            ),
            Panel(
                "Calls targeted /s",
                [
                    Query(
                        rate(
                            "agent_sre_chaos_calls_targeted_total",
                            "experiment",
                            'experiment=~"$experiment"',
                        ),
                        "{{experiment}}",
                    )
                ],
                unit="ops",
                width=12,
            ),
            Panel(
                "Aborts over the range",
                [
                    Query(
                        "sum by (experiment, reason) "
                        f"(increase(agent_sre_chaos_aborts_total{{{CHAOS}}}[$__range]))",
                        "{{experiment}} {{reason}}",
                        instant=True,
                    )
                ],
                kind="bargauge",
                width=12,
            ),
            Panel(
                "Proxied calls failing (5xx share)",
                [
                    Query(
                        share(
                            "agent_sre_proxy_requests_total",
                            "route",
                            TARGET,
                            'status=~"5.."',
                        ),
                        "{{route}}",
                    )
                ],
                unit="percentunit",
                width=12,
            ),
        ],
    )
    return Dashboard(
        "agent-sre-chaos",
        "agent-sre / Chaos",
        "Chaos experiments: when they run, the faults they inject, the calls they target, "
        "why they were aborted, and the error share of proxied calls meanwhile.",
        [row],
        [
            *target_variables(),
            query_variable(
                "experiment",
                "Experiment",
                'label_values(agent_sre_chaos_experiment_active{job=~"$job"}, experiment)',
            ),
        ],
    )


ROLLOUT = f'{TARGET}, rollout=~"$rollout"'


def rollouts() -> Dashboard:
    row = Row(
        "Rollouts",
        [
            Panel(
                "Traffic weight",
                [
                    Query(
                        f"max by (rollout, variant) (agent_sre_rollout_weight{{{ROLLOUT}}})",
                        "{{rollout}} {{variant}}",
                    )
                ],
                unit="percentunit",
                width=12,
            ),
            Panel(
                "Phase",
                [Query(f"max by (rollout) (agent_sre_rollout_phase{{{ROLLOUT}}})", "{{rollout}}")],
                kind="state-timeline",
                width=12,
                options={"mappings": True},
                description="1 progressing, 2 paused, 3 promoted, 4 rolled back, 5 aborted.",
            ),
            Panel(
                "Calls /s by variant",
                [
                    Query(
                        rate(
                            "agent_sre_rollout_requests_total",
                            "rollout, variant, result",
                            'rollout=~"$rollout"',
                        ),
                        "{{rollout}} {{variant}} {{result}}",
                    )
                ],
                unit="reqps",
                width=12,
            ),
            Panel(
                "Error share by variant",
                [
                    Query(
                        share(
                            "agent_sre_rollout_requests_total",
                            "rollout, variant",
                            ROLLOUT,
                            'result="error"',
                        ),
                        "{{rollout}} {{variant}}",
                    )
                ],
                unit="percentunit",
                width=12,
            ),
            Panel(
                "Shadow cost (USD/h)",
                [
                    Query(
                        "sum by (rollout) (rate(agent_sre_rollout_shadow_cost_usd_total"
                        f"{{{ROLLOUT}}}[$__rate_interval])) * 3600",
                        "{{rollout}}",
                    )
                ],
                unit="currencyUSD",
                width=24,
            ),
        ],
    )
    return Dashboard(
        "agent-sre-rollouts",
        "agent-sre / Rollouts",
        "Progressive delivery: each rollout's weights over time, its phase, and how the "
        "baseline, candidate and shadow variants answer.",
        [row],
        [
            *target_variables(),
            query_variable(
                "rollout",
                "Rollout",
                'label_values(agent_sre_rollout_phase{job=~"$job"}, rollout)',
            ),
        ],
    )


DASHBOARDS = (node, slos, cost, chaos, rollouts)
PHASE_NAMES = {
    "1": "progressing",
    "2": "paused",
    "3": "promoted",
    "4": "rolled back",
    "5": "aborted",
}


# -- layout and JSON ------------------------------------------------------------------------


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    targets = []
    for index, query in enumerate(panel.queries):
        targets.append(
            {
                "refId": chr(ord("A") + index),
                "datasource": DATASOURCE,
                "expr": query.expr,
                "legendFormat": query.legend,
                "instant": query.instant,
                "range": not query.instant,
                "editorMode": "code",
            }
        )
    defaults: dict[str, Any] = {"unit": panel.unit, **panel.defaults}
    if panel.options.get("mappings"):
        defaults["mappings"] = [
            {
                "type": "value",
                "options": {k: {"text": v, "index": int(k) - 1} for k, v in PHASE_NAMES.items()},
            }
        ]
    out: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": _options(panel.kind),
        "targets": targets,
    }
    if panel.description:
        out["description"] = panel.description
    return out


def _options(kind: str) -> dict[str, Any]:
    legend = {"displayMode": "list", "placement": "bottom", "showLegend": True}
    reduce = {"calcs": ["lastNotNull"], "fields": "", "values": False}
    if kind == "timeseries":
        return {"legend": legend, "tooltip": {"mode": "multi", "sort": "desc"}}
    if kind == "stat":
        return {
            "reduceOptions": reduce,
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "auto",
        }
    if kind == "bargauge":
        return {
            "reduceOptions": reduce,
            "displayMode": "gradient",
            "orientation": "horizontal",
            "showUnfilled": True,
        }
    if kind == "state-timeline":
        return {"legend": legend, "mergeValues": True, "showValue": "auto", "rowHeight": 0.9}
    if kind == "table":
        return {"showHeader": True}
    raise ValueError(f"no options for a {kind} panel")


def dashboard_json(dashboard: Dashboard) -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    panel_id = 1
    y = 0
    for row in dashboard.rows:
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id += 1
        y += 1
        x = 0
        line_height = 0
        for panel in row.panels:
            if x + panel.width > 24:
                x, y, line_height = 0, y + line_height, 0
            panels.append(_panel_json(panel, panel_id, x, y))
            panel_id += 1
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": dashboard.tags,
        "editable": True,
        "graphTooltip": 1,
        "timezone": "browser",
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": [
            {
                "type": "dashboards",
                "tags": ["agent-sre"],
                "asDropdown": True,
                "title": "agent-sre",
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {"list": dashboard.variables},
        "panels": panels,
    }


KUSTOMIZATION = """\
# Generated by deployments/render_dashboards.py; do not edit. The agent-sre dashboards as
# ConfigMaps for the Grafana sidecar (label grafana_dashboard: "1"), the plain-manifests
# counterpart of the chart's `grafanaDashboards.enabled` (docs/grafana.md):
#   kubectl apply -k deployments/grafana -n monitoring   (the namespace your sidecar watches)
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
generatorOptions:
  disableNameSuffixHash: true
  labels:
    grafana_dashboard: "1"
    app.kubernetes.io/part-of: agent-sre
configMapGenerator:
"""


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    out = {}
    for make in DASHBOARDS:
        dashboard = make()
        name = dashboard.uid.removeprefix("agent-sre-") + ".json"
        out[name] = json.dumps(dashboard_json(dashboard), indent=2) + "\n"
    return out


def kustomization(names: list[str]) -> str:
    lines = [KUSTOMIZATION]
    for name in names:
        stem = name.removesuffix(".json")
        lines.append(
            f"  - {{name: agent-sre-dashboard-{stem}, files: [agent-sre-{name}={name}]}}\n"
        )
    return "".join(lines)


def main(argv: list[str]) -> int:
    files = render()
    for directory in (OUT, CHART_COPY):
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (directory / name).write_text(text, "utf-8")
            print(f"wrote {directory / name}")
    (OUT / "kustomization.yaml").write_text(kustomization(list(files)), "utf-8")
    print(f"wrote {OUT / 'kustomization.yaml'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
