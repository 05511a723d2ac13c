"""The generated Prometheus rules, checked and unit-tested by the real ``promtool``.

Input series are ``agent_sre_slo_events_total`` as two daemons (``instance`` n1 and n2) would
export them, one sample a minute. Every SLO targets 0.99 over 30d, so the alerts fire above
error ratios of 0.144 (page-1h), 0.06 (page-6h), 0.03 (ticket-1d) and 0.01 (ticket-3d).
"""

from __future__ import annotations

import shutil
import subprocess
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from agent_sre.slo.rules import ALERT_NAME, generate_prometheus_rules, rules_yaml
from agent_sre.slo.spec import SLOSpec

if TYPE_CHECKING:
    from pathlib import Path

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not installed (Debian package 'prometheus'; tests/setup-services.sh)",
)

SPECS = [
    SLOSpec.model_validate({"name": "chat", "target": 0.99, "sli": {"kind": "llm_success"}}),
    SLOSpec.model_validate(
        {
            "name": "tools",
            "target": 0.99,
            "sli": {"kind": "tool_call_success"},
            "labels": ["agent.id"],
        }
    ),
    SLOSpec.model_validate(
        {"name": "quiet", "target": 0.999, "window": "28d", "sli": {"kind": "task_success"}}
    ),
]

METRIC = "agent_sre_slo_events_total"
SERIES = [
    # chat: n1 fails 10% of 100 a minute, n2 never fails (and exports no bad series at all).
    # Summed: 10 of 200 = 5%, which fires both tickets but neither page; n1 alone (10%)
    # would also fire page-6h.
    (f'{METRIC}{{slo="chat",result="good",instance="n1"}}', "0+90x180"),
    (f'{METRIC}{{slo="chat",result="bad",instance="n1"}}', "0+10x180"),
    (f'{METRIC}{{slo="chat",result="good",instance="n2"}}', "0+100x180"),
    # tools, split by agent: "a" starts failing everything at minute 60, "b" never fails.
    (f'{METRIC}{{slo="tools",agent_id="a",result="good",instance="n1"}}', "0+50x180"),
    (f'{METRIC}{{slo="tools",agent_id="a",result="bad",instance="n1"}}', "0x60 100+100x119"),
    (f'{METRIC}{{slo="tools",agent_id="b",result="good",instance="n2"}}', "0+50x180"),
    (f'{METRIC}{{slo="tools",agent_id="b",result="bad",instance="n2"}}', "0x180"),
]


def alert_rules() -> dict[tuple[str, str], dict[str, Any]]:
    rules = generate_prometheus_rules(SPECS)
    return {
        (
            rule["labels"]["slo"],
            f"{rule['labels']['severity']}-{rule['labels']['long_window']}",
        ): rule
        for group in rules["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def expected(slo: str, name: str, **extra: str) -> dict[str, Any]:
    rule = alert_rules()[(slo, name)]
    return {"exp_labels": {**rule["labels"], **extra}, "exp_annotations": rule["annotations"]}


def write(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(rules_yaml(generate_prometheus_rules(SPECS)), "utf-8")
    return path


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_accepts_the_generated_rules(tmp_path: Path) -> None:
    path = write(tmp_path)
    result = promtool("check", "rules", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    # per SLO: 7 or 8 error ratios (5m, 30m, 1h, 2h, 6h, 1d, 3d and the SLO window),
    # 6 budget records and 4 alerts
    assert "SUCCESS: 54 rules found" in result.stdout


def test_promtool_unit_tests_fire_exactly_the_expected_alerts(tmp_path: Path) -> None:
    write(tmp_path)
    alerts_at = {
        # before agent "a" fails: only chat's tickets
        "59m": [expected("chat", "ticket-1d"), expected("chat", "ticket-3d")],
        # ten minutes of "a" failing everything: all four of its alerts, none for "b"
        "70m": [expected("chat", "ticket-1d"), expected("chat", "ticket-3d")]
        + [
            expected("tools", name, agent_id="a")
            for name in ("page-1h", "page-6h", "ticket-1d", "ticket-3d")
        ],
    }
    test_file: dict[str, Any] = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in SERIES],
                "alert_rule_test": [
                    {"eval_time": at, "alertname": ALERT_NAME, "exp_alerts": alerts}
                    for at, alerts in alerts_at.items()
                ],
                "promql_expr_test": [
                    {
                        "expr": 'slo:sli_error:ratio_rate5m{slo="chat"}',
                        "eval_time": "120m",
                        "exp_samples": [
                            {
                                "labels": 'slo:sli_error:ratio_rate5m{slo="chat",window="5m"}',
                                "value": 0.05,
                            }
                        ],
                    },
                    {
                        "expr": 'slo:sli_error:ratio_rate1h{slo="tools"}',
                        "eval_time": "59m",
                        "exp_samples": [
                            {
                                "labels": (
                                    'slo:sli_error:ratio_rate1h{slo="tools",agent_id="a",'
                                    'window="1h"}'
                                ),
                                "value": 0,
                            },
                            {
                                "labels": (
                                    'slo:sli_error:ratio_rate1h{slo="tools",agent_id="b",'
                                    'window="1h"}'
                                ),
                                "value": 0,
                            },
                        ],
                    },
                    {
                        "expr": 'slo:current_burn_rate:ratio{slo="chat"}',
                        "eval_time": "120m",
                        "exp_samples": [
                            {"labels": 'slo:current_burn_rate:ratio{slo="chat"}', "value": 5}
                        ],
                    },
                    {
                        "expr": 'slo:period_error_budget_remaining:ratio{slo="chat"}',
                        "eval_time": "120m",
                        "exp_samples": [
                            {
                                "labels": ('slo:period_error_budget_remaining:ratio{slo="chat"}'),
                                "value": -4,
                            }
                        ],
                    },
                    {
                        "expr": "slo:objective:ratio",
                        "eval_time": "1m",
                        "exp_samples": [
                            {"labels": 'slo:objective:ratio{slo="chat"}', "value": 0.99},
                            {"labels": 'slo:objective:ratio{slo="tools"}', "value": 0.99},
                            {"labels": 'slo:objective:ratio{slo="quiet"}', "value": 0.999},
                        ],
                    },
                    {
                        "expr": 'slo:error_budget:ratio{slo="quiet"}',
                        "eval_time": "1m",
                        "exp_samples": [
                            {"labels": 'slo:error_budget:ratio{slo="quiet"}', "value": 0.001}
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test_file, sort_keys=False), "utf-8")
    result = promtool("test", "rules", "test.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_promtool_catches_an_alert_that_should_not_fire(tmp_path: Path) -> None:
    """The harness itself can fail: claiming chat pages at 120m is refused by promtool."""
    write(tmp_path)
    test_file = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in SERIES],
                "alert_rule_test": [
                    {
                        "eval_time": "120m",
                        "alertname": ALERT_NAME,
                        "exp_alerts": [
                            expected("chat", "page-6h"),
                            expected("chat", "ticket-1d"),
                            expected("chat", "ticket-3d"),
                        ]
                        + [
                            expected("tools", name, agent_id="a")
                            for name in ("page-1h", "page-6h", "ticket-1d", "ticket-3d")
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test_file, sort_keys=False), "utf-8")
    result = promtool("test", "rules", "test.yaml", cwd=tmp_path)
    assert result.returncode != 0
    assert "page" in result.stdout + result.stderr
