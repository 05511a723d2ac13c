"""AgentSLO status from a real Prometheus (Debian package ``prometheus``;
tests/setup-services.sh) that scrapes a real daemon and evaluates the rules
``agent-sre rules prometheus`` writes, read by the real operator against kmock.

Prometheus' ``increase()`` counts from the first sample it scraped, so its error ratio is
that of the spans sent after its first scrape, while the daemon counts every span: the two
sources give different attainments, which tells which one the status came from."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.operator.single import single
from tests.operator.test_operator_kmock import slo_names
from tests.support.durability import Sender
from tests.support.receivers import free_port
from tests.support.spans import set_value

if TYPE_CHECKING:
    from pathlib import Path

pytest.importorskip("kmock")
pytest.importorskip("kopf")
PROMETHEUS = shutil.which("prometheus")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        PROMETHEUS is None,
        reason="prometheus not installed (Debian package 'prometheus'; tests/setup-services.sh)",
    ),
]


def tasks(good: int, bad: int) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add()
    now = time.time_ns()
    for i in range(good + bad):
        span = spans.spans.add()
        span.trace_id, span.span_id = os.urandom(16), os.urandom(8)
        span.name, span.kind = "task", 1
        span.start_time_unix_nano, span.end_time_unix_nano = now - 1_000_000, now
        for key, value in {"agent.span.kind": "AGENT_TASK", "agent.task.success": i < good,
                           "agent.id": "a"}.items():  # fmt: skip
            kv = span.attributes.add()
            kv.key = key
            set_value(kv, value)
    return request


class Prometheus:
    def __init__(self, workdir: Path, port: int, target: str, rules: Path) -> None:
        assert PROMETHEUS is not None
        config = workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [{"job_name": "agent-sre", "static_configs": [
                {"targets": [target]}]}],
        }))  # fmt: skip
        self.url = f"http://127.0.0.1:{port}"
        self.log = (workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return list(json.load(response)["data"]["result"])
        except OSError:
            return []

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def test_slo_status_comes_from_prometheus_and_from_the_daemons_without_it(
    tmp_path: Path,
) -> None:
    with single(tmp_path) as stand:
        daemon = stand.daemon
        assert daemon is not None
        prometheus: Prometheus | None = None
        prometheus_port = free_port()
        operator = stand.start_operator(
            "op", "--prometheus-url", f"http://127.0.0.1:{prometheus_port}"
        )
        try:
            stand.create_slo(
                "tasks", {"target": 0.9, "window": "7d", "sli": {"kind": "task_success"}}
            )
            stand.wait(lambda: "tasks" in slo_names(daemon))
            sender = Sender(daemon.addresses["otlp_grpc"])
            sender.stub.Export(tasks(good=3, bad=1), timeout=5)  # before Prometheus' first look

            # Prometheus not there yet: the daemons' exact counts speak
            first = stand.wait(lambda: stand.status("tasks").get("valid") == 4
                               and stand.status("tasks"))  # fmt: skip
            assert first["source"] == "daemons"
            assert first["attainment"] == 0.75

            # the rules as the CLI writes them for the SLO the daemon runs
            rules = tmp_path / "rules.yaml"
            result = subprocess.run(
                [sys.executable, "-m", "agent_sre_daemon.cli", "rules", "prometheus",
                 "--config", str(daemon.config_path), "--output", str(rules)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            (tmp_path / "prom").mkdir()
            prometheus = Prometheus(tmp_path / "prom", prometheus_port,
                                    daemon.addresses["metrics"], rules)  # fmt: skip
            series = 'agent_sre_slo_events_total{slo="tasks"}'
            stand.wait(lambda: len(prometheus.query(series)) == 2)  # good and bad, scraped
            sender.stub.Export(tasks(good=6, bad=4), timeout=5)  # Prometheus sees these
            sender.close()
            # the daemon counts 9 good of 14 (0.642857); Prometheus 6 of 10 since it looked
            stand.wait(lambda: stand.status("tasks").get("source") == "prometheus"
                       and stand.status("tasks").get("attainment") == 0.6)  # fmt: skip
            now = stand.status("tasks")
            assert now["errorBudgetRemaining"] == pytest.approx(1 - 0.4 / 0.1)
            assert now["burnRates"]["7d"] == pytest.approx(0.4 / 0.1)
            assert now["burnRates"]["5m"] == pytest.approx(0.4 / 0.1)
            assert "good" not in now and "valid" not in now  # exact counts are the daemons'
            # the recorded rule reads the SLI group's record as of its own evaluation (groups
            # are evaluated apart): it agrees once both evaluated over the same samples
            assert prometheus is not None
            budget_rule = 'slo:period_error_budget_remaining:ratio{slo="tasks"}'
            stand.wait(lambda: (recorded := prometheus.query(budget_rule))
                       and float(recorded[0]["value"][1])
                       == pytest.approx(now["errorBudgetRemaining"]))  # fmt: skip
            with urllib.request.urlopen(daemon.url("admin", "/v1/slos/tasks"), timeout=5) as r:
                assert json.load(r)["overall"]["budget"]["total"] == 14

            # Prometheus goes away: the daemons speak again, and the operator keeps running
            prometheus.stop()
            prometheus = None
            back = stand.wait(lambda: stand.status("tasks").get("source") == "daemons"
                              and stand.status("tasks"))  # fmt: skip
            assert back["valid"] == 14 and back["good"] == 9
            assert operator.poll() is None
        finally:
            if prometheus is not None:
                prometheus.stop()
