"""Every query of the Grafana dashboards against a real Prometheus scraping a real daemon.

The daemon is seeded (tests/support/seeded.py) with SLOs, budgets, a chaos experiment, a
rollout, proxied calls and spans; Prometheus (Debian's ``prometheus``, on loopback) scrapes it
every second and evaluates the SLO rules ``agent-sre rules prometheus`` writes for the same
SLOs. Then, for every panel and every variable of deployments/grafana/*.json:

- Prometheus parses the query (an HTTP 400 otherwise) and, with the seeded data, answers it
  with at least one series (a panel that names a metric or a label the daemon does not export
  draws nothing, and fails here);
- every metric the query selects is on the daemon's ``/metrics`` (or is a record of the
  generated rules), and every label the query matches or groups by is a label of it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from agent_sre.slo.rules import generate_prometheus_rules, rules_yaml
from agent_sre.slo.spec import SLOSpec
from tests.support import seeded
from tests.support.receivers import free_port

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.support.daemon import DaemonProcess

ROOT = Path(__file__).parents[2]
PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="prometheus not installed (Debian package 'prometheus'; tests/setup-services.sh)",
)
DASHBOARDS = sorted((ROOT / "deployments" / "grafana").glob("*.json"))
SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\{([^}]*)\}")
MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
TARGET_LABELS = {"job", "instance"}
"""Labels Prometheus adds to every scraped series."""
PROMETHEUS_OWN = {
    "ALERTS": {"alertname", "alertstate", "slo", "severity", "long_window", "short_window"}
}
"""Series Prometheus makes itself, with their labels (ALERTS from the generated alerts)."""
MAY_BE_EMPTY = {
    "Burn-rate alerts firing": "no burn-rate alert fires a few seconds after the start",
    "Aborts over the range": "no abort rule is crossed by the seeded experiment",
    "Shadow cost (USD/h)": "the seeded rollout is a canary, not a shadow",
    "Items dropped /s": "the daemon dropped nothing it accepted",
}
"""Panels whose queries may rightly draw nothing on the seeded daemon (still parsed, and
their metrics and labels still checked against the daemon's /metrics)."""


def documented_labels() -> dict[str, set[str]]:
    """Metric -> its labels, from docs/metrics.md (generated from the daemon's registry)."""
    out = {}
    for line in (ROOT / "docs" / "metrics.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.split("|")[1:-1]]
        if len(cells) == 4 and cells[0].startswith("`"):
            out[cells[0].strip("`")] = {label.strip("` ") for label in cells[2].split(",") if label}
    return out


def queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expr) of every panel query."""
    out = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                out.append((path.stem, panel["title"], target["expr"]))
    return out


def variable_queries() -> list[tuple[str, str, str]]:
    """(dashboard, variable, label_values query) of every query variable."""
    out = []
    for path in DASHBOARDS:
        for variable in json.loads(path.read_text())["templating"]["list"]:
            if variable["type"] == "query":
                out.append((path.stem, variable["name"], variable["query"]["query"]))
    return out


def substitute(expr: str) -> str:
    """What Grafana sends with every variable at "All" (``.*``)."""
    expr = expr.replace("$__rate_interval", "1m").replace("$__range", "5m")
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def label_values_as_promql(query: str) -> tuple[str, str]:
    match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
    assert match, query
    return f"group by ({match.group(2)}) ({match.group(1)})", match.group(2)


class Prometheus:
    def __init__(self, workdir: Path, target: str, rules: Path) -> None:
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [
                {"job_name": "agent-sre", "static_configs": [{"targets": [target]}]}
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = (workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                PROMETHEUS or "prometheus",
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def query(self, expr: str) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expr}
        )
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    def wait_for(self, check: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if check():
                    return
            except (OSError, ValueError, LookupError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"never happened: {what}")
            time.sleep(0.5)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)
        self.log.close()


@pytest.fixture(scope="module")
def seeded_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    from tests.support.daemon import LOOPBACK_PORTS, DaemonProcess, merge

    workdir = tmp_path_factory.mktemp("grafana")
    provider = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fakes" / "provider.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert provider.stdout is not None
    url = provider.stdout.readline().strip()
    base = merge(LOOPBACK_PORTS, {"state_dir": str(workdir / "state"), "node": {"name": "n1"}})
    daemon = DaemonProcess(workdir, merge(base, seeded.config(url))).start()
    try:
        seeded.traffic(daemon)
        yield daemon
    finally:
        daemon.stop(timeout=15)
        provider.terminate()
        provider.wait(10)


@pytest.fixture(scope="module")
def exposition(seeded_daemon: DaemonProcess) -> dict[str, set[str] | None]:
    """Family name -> labels of its samples (None: declared on /metrics, no sample yet),
    once the SLO events of the held proxy spans are counted."""

    def read() -> dict[str, set[str] | None]:
        url = seeded_daemon.url("metrics", "/metrics")
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        out: dict[str, set[str] | None] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out.setdefault(sample.name, set()).update(sample.labels)  # type: ignore[union-attr]
            if not family.samples:  # declared (its HELP line), no sample yet
                for suffix in ("", "_total", "_bucket"):
                    out.setdefault(family.name + suffix, None)
        return out

    deadline = time.monotonic() + 60
    families = read()
    while "agent_sre_slo_sli_ratio" not in families or families["agent_sre_slo_sli_ratio"] is None:
        assert time.monotonic() < deadline, "the SLOs never counted the proxied calls"
        time.sleep(0.5)
        families = read()
    return families


@pytest.fixture(scope="module")
def rules() -> dict[str, set[str]]:
    """Record name -> the labels its series carry, from the generated rules."""
    specs = [SLOSpec.model_validate(slo) for slo in seeded.SLOS]
    generated = generate_prometheus_rules(specs)
    labels: dict[str, set[str]] = {}
    slo_labels = {"agent_id"}  # the seeded SLOs' labels (agent.id)
    for group in generated["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                labels.setdefault(rule["record"], {"slo"}).update(
                    rule.get("labels", {}), slo_labels
                )
    return labels


@pytest.fixture(scope="module")
def prometheus(
    seeded_daemon: DaemonProcess,
    exposition: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Prometheus]:
    workdir = tmp_path_factory.mktemp("prometheus")
    specs = [SLOSpec.model_validate(slo) for slo in seeded.SLOS]
    rules_file = workdir / "rules.yml"
    rules_file.write_text(rules_yaml(generate_prometheus_rules(specs)))
    server = Prometheus(workdir, seeded_daemon.addresses["metrics"], rules_file)
    try:
        # two scrapes after the seeding (rate needs two samples) and every rule evaluated
        server.wait_for(
            lambda: (
                len(server.query("agent_sre_queue_requests[10s]")[1]["data"]["result"][0]["values"])
                >= 3
                and server.query("slo:objective:ratio")[1]["data"]["result"]
                # read from the SLI group's records: groups are evaluated apart, so the
                # first evaluations of the meta group may precede them
                and server.query("slo:period_error_budget_remaining:ratio")[1]["data"]["result"]
            ),
            "Prometheus scraping the daemon and evaluating the SLO rules",
        )
        yield server
    finally:
        server.stop()


QUERIES = queries()
IDS = [f"{d}:{t}:{i}" for i, (d, t, _) in enumerate(QUERIES)]


def test_every_dashboard_has_queries() -> None:
    assert {d for d, _, _ in QUERIES} == {p.stem for p in DASHBOARDS}
    assert len(QUERIES) > 40


@pytest.mark.parametrize(("dashboard", "title", "expr"), QUERIES, ids=IDS)
def test_each_query_parses_and_draws_the_seeded_daemon(
    prometheus: Prometheus, dashboard: str, title: str, expr: str
) -> None:
    status, body = prometheus.query(substitute(expr))
    assert status == 200 and body["status"] == "success", (expr, body)
    if title not in MAY_BE_EMPTY:
        assert body["data"]["result"], f"{dashboard} / {title}: no series for {expr}"


@pytest.mark.parametrize(("dashboard", "title", "expr"), QUERIES, ids=IDS)
def test_each_metric_and_label_a_query_uses_is_exported(
    exposition: dict[str, set[str] | None],
    rules: dict[str, set[str]],
    dashboard: str,
    title: str,
    expr: str,
) -> None:
    selectors = SELECTOR.findall(expr)
    assert selectors, expr
    available: set[str] = set(TARGET_LABELS)
    for name, matchers in selectors:
        if name in rules:
            labels = rules[name]
        elif name in PROMETHEUS_OWN:
            labels = PROMETHEUS_OWN[name]
        else:
            assert name in exposition, f"{title}: {name} is not on the daemon's /metrics"
            sampled = exposition[name]
            if sampled is None:  # declared, never counted: the labels the registry declares
                assert title in MAY_BE_EMPTY, f"{title}: {name} has no sample on the daemon"
                sampled = documented_labels()[name]
            labels = sampled
        used = set(MATCHER.findall(matchers)) - TARGET_LABELS
        assert used <= labels, f"{title}: {name} has no label {used - labels}"
        available |= labels
    for grouping in GROUPING.findall(expr):
        grouped = {label.strip() for label in grouping.split(",") if label.strip()}
        assert grouped <= available, f"{title}: grouped by {grouped - available}, never present"


@pytest.mark.parametrize(
    ("dashboard", "name", "query"),
    variable_queries(),
    ids=[f"{d}:{n}" for d, n, _ in variable_queries()],
)
def test_each_variable_lists_values(
    prometheus: Prometheus, dashboard: str, name: str, query: str
) -> None:
    expr, label = label_values_as_promql(substitute(query))
    status, body = prometheus.query(expr)
    assert status == 200, body
    values = [series["metric"].get(label) for series in body["data"]["result"]]
    assert values and all(values), f"{dashboard}: ${name} would list nothing ({query})"


def test_a_wrong_label_or_metric_is_caught(
    exposition: dict[str, set[str] | None], rules: dict[str, set[str]], prometheus: Prometheus
) -> None:
    # the checks above must be able to fail: a misspelt metric, a label the metric lacks
    for expr in (
        'rate(agent_sre_proxy_request_total{job=~".*"}[1m])',
        'sum by (agent) (rate(agent_sre_proxy_requests_total{route="x"}[1m]))',
    ):
        with pytest.raises(AssertionError):
            test_each_metric_and_label_a_query_uses_is_exported(
                exposition, rules, "x", "spoilt", expr
            )
    status, body = prometheus.query("sum by (slo (agent_sre_slo_target_ratio)")
    assert status == 400 and body["errorType"] == "bad_data"
