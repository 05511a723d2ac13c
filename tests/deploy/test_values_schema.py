"""The chart refuses exactly the SLOs the daemon refuses.

Generated and edge values of the SLO fields the chart itself reads (windows, alert windows,
their budget or factor, targets) go through the chart — its values.schema.json checked by
jsonschema and by Helm's own validator, then the template's checks of what a schema cannot
compare — and through the daemon's loading of the same configuration; both must agree. The
schema is generated from the daemon's models (deployments/render_values_schema.py) and is
checked current here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.deploy.chart import CHART_DIR, ROOT

helm = pytest.importorskip("helm_python", reason="helm-python-sdk (dev extra) embeds Helm")
jsonschema = pytest.importorskip("jsonschema")

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
DEFAULTS = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
MINUTE, HOUR, DAY = 60, 3600, 86400

EDGE_WINDOWS: list[Any] = [
    "90s", "1.5h", "6h30m", "6h", "5h59m", "90m", "360m", "361m", "420m", "1h90m", "1h",
    "52w2d", "52w3d", "366d", "367d", "8784h", "8785h", "53w", "52w", "1d12h", "36h", "0m",
    "05m", "1m", "59s", "60s", "120s", "0.5h", "2w", "28d", " 5m", "5m ", "5M", "1w1d1h",
    "1h1w", "3d", "30d", "400d", "",
    0, 59, 60, 90, 120, 3600, 21600, 21660, 25200, 25260, 86400, 31622400, 31626000,
    -60, 60.0, 60.5, 3600.0, 1e300, 2**70, 2**70 + 60, True,
]  # fmt: skip


def duration_strings() -> st.SearchStrategy[str]:
    number = st.one_of(
        st.integers(0, 400).map(str),
        st.integers(0, 9999).map(str),
        st.tuples(st.integers(0, 99), st.integers(0, 99)).map(lambda p: f"{p[0]}.{p[1]}"),
    )
    part = st.tuples(number, st.sampled_from(["ms", "s", "m", "h", "d", "w"]))
    return st.lists(part, min_size=1, max_size=3).map(lambda ps: "".join(n + u for n, u in ps))


def windows() -> st.SearchStrategy[Any]:
    seconds = st.one_of(
        st.integers(-MINUTE, 400 * DAY),
        st.integers(0, 400 * 24).map(lambda h: h * HOUR),
        st.integers(0, 8 * 60).map(lambda m: m * MINUTE),
        st.floats(-1, 400 * DAY, allow_nan=False, allow_infinity=False),
    )
    return st.one_of(st.sampled_from(EDGE_WINDOWS), seconds, duration_strings())


def alerts() -> st.SearchStrategy[dict[str, Any]]:
    amount = st.one_of(st.none(), st.sampled_from([-1, 0, 0.5, 2, 100, 101, 14.4]))
    return st.fixed_dictionaries(
        {"severity": st.sampled_from(["page", "ticket"]), "long": windows(), "short": windows()},
        optional={"budget_percent": amount, "factor": amount},
    )


def slos() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "name": st.sampled_from(["a", "b"]),
            "target": st.sampled_from([0.99, 0.5, 0.999, 0, 1, 1.5, -0.1, True, "0.99"]),
            "sli": st.just({"kind": "llm_success"}),
        },
        optional={
            "window": windows(),
            "alerting": st.one_of(st.none(), st.lists(alerts(), max_size=2)),
        },
    )


def daemon_accepts(slo_list: list[dict[str, Any]], tmp_name: str = "values.json") -> bool:
    """The daemon's own loading of the configuration the chart writes (JSON, read as YAML)."""
    from agent_sre.config import ConfigError, parse_config

    try:
        parse_config(json.dumps({"slos": slo_list}), tmp_name, env={})
    except ConfigError:
        return False
    return True


def chart_accepts(slo_list: list[dict[str, Any]]) -> bool:
    """values.schema.json (jsonschema, then Helm's validator agreeing) and the templates."""
    values = {"config": {"slos": slo_list}}
    by_schema = VALIDATOR.is_valid(merged(DEFAULTS, values))  # Helm checks values.yaml + these
    chart = helm.Chart.load(CHART_DIR)
    try:
        chart.render(values, name="agent-sre", namespace="agent-sre")
    except helm.HelmValuesError:
        assert not by_schema, f"Helm's validator refused what jsonschema accepts: {values}"
        return False
    except helm.HelmRenderError:
        return False
    assert by_schema, f"Helm's validator accepted what jsonschema refuses: {values}"
    return True


def merged(base: Any, over: Any) -> Any:
    """Helm's merge of given values over the chart's: mappings key by key, the rest replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: merged(base.get(k), v) for k, v in over.items()}}
    return over


def agree(slo_list: list[dict[str, Any]]) -> None:
    daemon = daemon_accepts(slo_list)
    chart = chart_accepts(slo_list)
    assert chart == daemon, (
        f"chart {'accepts' if chart else 'refuses'}, daemon "
        + ("accepts" if daemon else "refuses")
        + f": {slo_list}"
    )


BASE = {"name": "s", "target": 0.99, "sli": {"kind": "llm_success"}}


@pytest.mark.parametrize("window", EDGE_WINDOWS)
def test_every_edge_window_is_judged_alike(window: Any) -> None:
    agree([{**BASE, "window": window, "alerting": []}])
    alert = {"severity": "page", "factor": 2}
    agree([{**BASE, "window": "366d", "alerting": [{**alert, "long": window, "short": "1m"}]}])
    agree([{**BASE, "window": "366d", "alerting": [{**alert, "long": "366d", "short": window}]}])


def test_the_windows_of_the_issue() -> None:
    """`short: 90s` passed the chart and crash-looped the pods."""
    alert = {"severity": "page", "long": "1h", "short": "90s", "budget_percent": 2}
    assert not daemon_accepts([{**BASE, "alerting": [alert]}])
    assert not chart_accepts([{**BASE, "alerting": [alert]}])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(slos(), min_size=1, max_size=2))
@example([{**BASE, "window": "2d"}])
@example([{**BASE, "alerting": [{"severity": "page", "long": "5m", "short": "1h", "factor": 2}]}])
@example([{**BASE, "alerting": [{"severity": "page", "long": "1h", "short": "5m"}]}])
@example([BASE, BASE])
def test_generated_slos_are_judged_alike(slo_list: list[dict[str, Any]]) -> None:
    agree(slo_list)


def test_a_placeholder_is_left_to_the_daemon() -> None:
    alert = {"severity": "page", "long": "${LONG:-1h}", "short": "5m", "factor": "${F:-2}"}
    assert chart_accepts([{**BASE, "window": "${WINDOW:-30d}", "alerting": [alert]}])
    assert not chart_accepts([{**BASE, "window": "$WINDOW"}])


def test_the_schema_is_generated_from_the_daemon_models() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "render_values_schema", ROOT / "deployments" / "render_values_schema.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    current = (CHART_DIR / "values.schema.json").read_text()
    assert module.render(current) == current, (
        "regenerate: python deployments/render_values_schema.py (make manifests)"
    )


def test_numbers_json_cannot_carry_are_refused_by_the_daemon() -> None:
    """NaN and infinities have no JSON form, so no schema sees them; the daemon refuses them."""
    from agent_sre.config import ConfigError, parse_config

    for value in (".nan", ".inf", "-.inf"):
        text = f"slos: [{{name: s, target: 0.99, sli: {{kind: llm_success}}, window: {value}}}]"
        with pytest.raises(ConfigError, match="window"):
            parse_config(text, "f.yaml")
