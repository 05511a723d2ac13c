"""The Grafana dashboards: current with their generator, shaped as Grafana requires, shipped
in the chart (sidecar ConfigMaps, on and off) and as a kustomize base.

No Grafana runs here: Debian does not package it (not in main) and PyPI has no Grafana
server, and no published JSON Schema of the dashboard model exists in either registry
(grafana-foundation-sdk on PyPI has typed models whose ``from_json`` accepts anything). So
:func:`problems` is a strict check of what Grafana needs to load and draw a dashboard: the
PromQL of every panel runs against a real Prometheus in
tests/integration/test_grafana_dashboards.py.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.deploy.chart import CHART_DIR, KUBE_VERSION, ROOT, documents, render

if TYPE_CHECKING:
    from pathlib import Path

GRAFANA_DIR = ROOT / "deployments" / "grafana"
FILES = sorted(GRAFANA_DIR.glob("*.json"))
PANEL_TYPES = {"row", "timeseries", "stat", "bargauge", "state-timeline", "table"}
"""Panel plugins the dashboards use: all built into Grafana (no plugin to install)."""
VARIABLE_TYPES = {"datasource", "query", "adhoc", "custom", "constant", "interval"}
BUILTIN_VARIABLES = {"__rate_interval", "__range", "__interval"}
UID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "render_dashboards", ROOT / "deployments" / "render_dashboards.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def problems(dashboard: Any) -> list[str]:
    """What would keep Grafana from loading ``dashboard`` or drawing every panel of it."""
    out: list[str] = []
    if not isinstance(dashboard, dict):
        return ["a dashboard is a JSON object"]
    for key, kind in (("uid", str), ("title", str), ("schemaVersion", int), ("panels", list),
                      ("templating", dict), ("time", dict)):  # fmt: skip
        if not isinstance(dashboard.get(key), kind):
            out.append(f"{key}: missing or not a {kind.__name__}")
    if out:
        return out
    if not UID.match(dashboard["uid"]):
        out.append(f"uid {dashboard['uid']!r}: 1 to 40 letters, digits, - or _")
    if dashboard["schemaVersion"] < 36:
        out.append("schemaVersion: older than Grafana 9 (36): migrations would rewrite it")
    if dashboard.get("id") is not None:
        out.append("id: set (an import would overwrite another dashboard's)")
    variables = dashboard["templating"].get("list")
    if not isinstance(variables, list):
        return [*out, "templating.list: missing"]
    names: set[str] = set()
    for number, variable in enumerate(variables):
        where = f"templating.list[{number}]"
        if not isinstance(variable, dict) or variable.get("type") not in VARIABLE_TYPES:
            out.append(f"{where}: unknown variable type")
            continue
        name = variable.get("name")
        if not isinstance(name, str) or not re.match(r"^\w+$", name) or name in names:
            out.append(f"{where}: name missing, not a word, or used twice")
            continue
        names.add(name)
        if variable["type"] == "query":
            query = variable.get("query", {})
            text = query.get("query") if isinstance(query, dict) else query
            if not isinstance(text, str) or not text.startswith("label_values("):
                out.append(f"{where}: a query variable without a label_values(...) query")
            elif variable.get("definition") != text:
                out.append(f"{where}: definition differs from the query")
            out += _datasource_problems(variable.get("datasource"), where)
    if "datasource" not in names:
        out.append("no ${datasource} variable: the dashboard would need editing per Grafana")
    ids: set[int] = set()
    cells: dict[tuple[int, int], int] = {}
    for number, panel in enumerate(dashboard["panels"]):
        where = f"panels[{number}]"
        if not isinstance(panel, dict):
            out.append(f"{where}: not an object")
            continue
        where = f"{where} ({panel.get('title', '?')})"
        if panel.get("type") not in PANEL_TYPES:
            out.append(f"{where}: panel type {panel.get('type')!r} is not built in")
        panel_id = panel.get("id")
        if not isinstance(panel_id, int) or isinstance(panel_id, bool) or panel_id in ids:
            out.append(f"{where}: id missing or used twice")
        else:
            ids.add(panel_id)
        if not panel.get("title"):
            out.append(f"{where}: no title")
        grid = panel.get("gridPos")
        if not isinstance(grid, dict) or not all(
            isinstance(grid.get(k), int) and grid[k] >= 0 for k in ("h", "w", "x", "y")
        ):
            out.append(f"{where}: gridPos needs whole h, w, x, y")
            continue
        if grid["w"] < 1 or grid["h"] < 1 or grid["x"] + grid["w"] > 24:
            out.append(f"{where}: gridPos outside the 24 columns")
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                if (x, y) in cells:
                    out.append(f"{where}: overlaps panel {cells[(x, y)]}")
                    break
                cells[(x, y)] = panel_id if isinstance(panel_id, int) else -1
            else:
                continue
            break
        if panel.get("type") == "row":
            if panel.get("collapsed") is not False or panel.get("panels") != []:
                out.append(f"{where}: an open row holds no panels of its own")
            continue
        out += _datasource_problems(panel.get("datasource"), where)
        targets = panel.get("targets")
        if not isinstance(targets, list) or not targets:
            out.append(f"{where}: no query")
            continue
        refs = [t.get("refId") for t in targets if isinstance(t, dict)]
        if len(refs) != len(targets) or len(set(refs)) != len(refs) or not all(refs):
            out.append(f"{where}: every query needs its own refId")
        for target in targets:
            if not isinstance(target, dict):
                continue
            out += _datasource_problems(target.get("datasource"), f"{where} {target.get('refId')}")
            expr = target.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                out.append(f"{where} {target.get('refId')}: no expr")
                continue
            for used in re.findall(r"\$\{?(\w+)", expr):
                if used not in names and used not in BUILTIN_VARIABLES:
                    out.append(f"{where}: ${used} is not a variable of the dashboard")
        if not isinstance(panel.get("fieldConfig", {}).get("defaults"), dict):
            out.append(f"{where}: fieldConfig.defaults missing")
    return out


def _datasource_problems(datasource: Any, where: str) -> list[str]:
    if datasource != {"type": "prometheus", "uid": "${datasource}"}:
        return [f"{where}: datasource is not the ${{datasource}} variable: {datasource!r}"]
    return []


def load(path: Path) -> Any:
    return json.loads(path.read_text("utf-8"))


# -- the files ---------------------------------------------------------------------------------


def test_the_dashboards_are_what_the_generator_writes() -> None:
    generator = _generator()
    files = generator.render()
    assert sorted(files) == ["chaos.json", "cost.json", "node.json", "rollouts.json", "slos.json"]
    hint = "regenerate: python deployments/render_dashboards.py"
    for name, text in files.items():
        assert (GRAFANA_DIR / name).read_text("utf-8") == text, hint
        assert (CHART_DIR / "dashboards" / name).read_text("utf-8") == text, hint
    assert sorted(p.name for p in (CHART_DIR / "dashboards").iterdir()) == sorted(files)
    kustomization = (GRAFANA_DIR / "kustomization.yaml").read_text("utf-8")
    assert kustomization == generator.kustomization(list(files)), hint


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_each_dashboard_is_shaped_as_grafana_needs(path: Path) -> None:
    assert problems(load(path)) == []


def test_the_dashboards_have_distinct_uids_and_titles() -> None:
    dashboards = [load(p) for p in FILES]
    assert len({d["uid"] for d in dashboards}) == len(dashboards)
    assert len({d["title"] for d in dashboards}) == len(dashboards)


BROKEN: list[tuple[str, Any, str]] = [
    ("no uid", lambda d: d.pop("uid"), "uid: missing"),
    ("long uid", lambda d: d.update(uid="x" * 41), "uid 'xxx"),
    ("an id", lambda d: d.update(id=7), "id: set"),
    ("old schema", lambda d: d.update(schemaVersion=27), "schemaVersion"),
    ("no datasource variable",
     lambda d: d["templating"].update(list=d["templating"]["list"][1:]), "no ${datasource}"),
    ("twice the same variable",
     lambda d: d["templating"]["list"].append(d["templating"]["list"][1]), "used twice"),
    ("unknown panel type", lambda d: d["panels"][1].update(type="graph-old"), "not built in"),
    ("same panel id", lambda d: d["panels"][2].update(id=d["panels"][1]["id"]), "used twice"),
    ("overlapping panels",
     lambda d: d["panels"][2].update(gridPos=dict(d["panels"][1]["gridPos"])), "overlaps"),
    ("past 24 columns", lambda d: d["panels"][1]["gridPos"].update(x=20), "24 columns"),
    ("fixed datasource",
     lambda d: d["panels"][1].update(datasource={"type": "prometheus", "uid": "P1"}),
     "not the ${datasource}"),
    ("query without datasource", lambda d: d["panels"][1]["targets"][0].pop("datasource"),
     "not the ${datasource}"),
    ("unknown variable in a query",
     lambda d: d["panels"][1]["targets"][0].update(expr='up{job=~"$nope"}'), "$nope"),
    ("two queries one refId",
     lambda d: d["panels"][1]["targets"].append(dict(d["panels"][1]["targets"][0])),
     "own refId"),
    ("no query", lambda d: d["panels"][1].update(targets=[]), "no query"),
    ("empty expr", lambda d: d["panels"][1]["targets"][0].update(expr=" "), "no expr"),
    ("not an object", lambda d: d.clear() or d.update(panels="x"), "missing"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "spoil", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_the_check_catches_what_grafana_would_refuse(what: str, spoil: Any, message: str) -> None:
    # a check that accepts everything proves nothing: each spoilt copy must be caught
    dashboard = copy.deepcopy(load(GRAFANA_DIR / "node.json"))
    spoil(dashboard)
    found = problems(dashboard)
    assert any(message in problem for problem in found), (what, found)


# -- the chart and the kustomize base ----------------------------------------------------------

helm = pytest.importorskip("helm_python", reason="helm-python-sdk (dev extra) embeds Helm")
kubernetes_validate = pytest.importorskip("kubernetes_validate")


def _dashboard_maps(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == "ConfigMap" and "-dashboard-" in d["metadata"]["name"]]


def test_the_chart_ships_no_dashboards_by_default() -> None:
    docs = documents(render({}))
    assert _dashboard_maps(docs) == []
    assert not [d for d in docs if "grafana_dashboard" in d["metadata"].get("labels", {})]


@pytest.mark.parametrize("mode", ["daemonset", "deployment"])
def test_the_chart_ships_each_dashboard_as_a_sidecar_config_map(mode: str) -> None:
    values = {"mode": mode, "grafanaDashboards": {"enabled": True}}
    report = helm.lint(CHART_DIR, values, strict=True, kube_version="v" + KUBE_VERSION)
    errors = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not errors
    docs = documents(render(values))
    maps = _dashboard_maps(docs)
    assert sorted(m["metadata"]["name"] for m in maps) == [
        f"agent-sre-dashboard-{p.stem}" for p in FILES
    ]
    for config_map in maps:
        kubernetes_validate.validate(config_map, KUBE_VERSION, strict=True)
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config_map["metadata"]["namespace"] == "agent-sre"
        ((key, text),) = config_map["data"].items()
        stem = config_map["metadata"]["name"].removeprefix("agent-sre-dashboard-")
        assert key == f"agent-sre-{stem}.json"
        assert json.loads(text) == load(GRAFANA_DIR / f"{stem}.json")
    # the daemon's own ConfigMap is still there, unchanged in name
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"].count("agent-sre") == 1


def test_the_sidecar_label_namespace_and_annotations_follow_the_values() -> None:
    values = {
        "grafanaDashboards": {
            "enabled": True,
            "namespace": "monitoring",
            "label": "grafana.example.com/dashboard",
            "labelValue": "agent-sre",
            "annotations": {"grafana_folder": "Agents"},
        }
    }
    for config_map in _dashboard_maps(documents(render(values))):
        metadata = config_map["metadata"]
        assert metadata["namespace"] == "monitoring"
        assert metadata["labels"]["grafana.example.com/dashboard"] == "agent-sre"
        assert "grafana_dashboard" not in metadata["labels"]
        assert metadata["annotations"] == {"grafana_folder": "Agents"}


@pytest.mark.parametrize(
    "values",
    [
        {"grafanaDashboards": {"enabled": "yes"}},
        {"grafanaDashboards": {"enabled": True, "label": "bad label!"}},
        {"grafanaDashboards": {"enabled": True, "labelValue": 1}},
        {"grafanaDashboards": {"enabled": True, "folder": "x"}},
        {"grafanaDashboards": {"enabled": True, "annotations": {"a": 1}}},
    ],
)
def test_bad_dashboard_values_are_refused_by_the_schema(values: dict[str, Any]) -> None:
    with pytest.raises(Exception, match="grafanaDashboards"):
        render(values)


def test_the_kustomize_base_builds_the_same_config_maps() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    result = subprocess.run([kubectl, "kustomize", str(GRAFANA_DIR)], capture_output=True,
                            text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    built = [d for d in yaml.safe_load_all(result.stdout) if d]
    chart = {m["metadata"]["name"]: m["data"] for m in _dashboard_maps(
        documents(render({"grafanaDashboards": {"enabled": True}})))}  # fmt: skip
    assert {d["metadata"]["name"]: d["data"] for d in built} == {
        name: {key: json.dumps(json.loads(text), indent=2) + "\n" for key, text in data.items()}
        for name, data in chart.items()
    }
    for doc in built:
        assert doc["metadata"]["labels"]["grafana_dashboard"] == "1"
