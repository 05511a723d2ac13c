"""The real operator (`agent-sre operator`, kopf) against kmock's Kubernetes API, driving two
real daemons (`agent-sre run`) on loopback served to it as pods."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from agent_sre_operator.kinds import API_VERSION, KINDS
from tests.support.daemon import LOOPBACK_PORTS, DaemonProcess, merge
from tests.support.durability import Sender
from tests.support.kube import FakeCluster, Kubelet

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path  # noqa: TC003

pytest.importorskip("kmock")
pytest.importorskip("kopf")

pytestmark = pytest.mark.integration

NS = "t"
TOKEN = "operator-test-token"
SELECTOR = {"app.kubernetes.io/name": "agent-sre"}
BASE = merge(
    LOOPBACK_PORTS,
    {
        "admin": {"endpoint": "127.0.0.1:0", "token": "${AGENT_SRE_ADMIN_TOKEN:-}"},
        "chaos": {"enabled": True},
    },
)


def cr_path(plural: str, name: str | None = None) -> str:
    base = f"/apis/{API_VERSION}/namespaces/{NS}/{plural}"
    return base if name is None else f"{base}/{name}"


class Stand:
    def __init__(self, cluster: FakeCluster, kubelet: Kubelet, daemons: list[DaemonProcess],
                 operator: subprocess.Popen[bytes], log: Path) -> None:  # fmt: skip
        self.cluster, self.kubelet, self.daemons = cluster, kubelet, daemons
        self.operator, self.log = operator, log

    def operator_log(self) -> str:
        return self.log.read_text(errors="replace")

    def create(self, kind: str, plural: str, name: str, spec: dict[str, Any]) -> None:
        body = {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}
        self.cluster.create(cr_path(plural), body, NS)

    def obj(self, plural: str, name: str) -> Any:
        return self.cluster.get(cr_path(plural, name))

    def condition(self, plural: str, name: str, type_: str) -> dict[str, Any]:
        obj = self.obj(plural, name) or {}
        for condition in (obj.get("status") or {}).get("conditions") or []:
            if condition["type"] == type_:
                return dict(condition)
        return {}

    def wait(self, what: Any, timeout: float = 60.0) -> Any:
        try:
            return self.cluster.wait_for(what, timeout)
        except AssertionError:
            print(self.operator_log()[-6000:])
            raise


def admin_get(daemon: DaemonProcess, path: str) -> Any:
    with urllib.request.urlopen(daemon.url("admin", path), timeout=5) as response:
        return json.load(response)


def slo_names(daemon: DaemonProcess) -> dict[str, float]:
    return {s["name"]: s["target"] for s in admin_get(daemon, "/v1/slos")["slos"]}


@pytest.fixture(scope="module")
def stand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stand]:
    tmp = tmp_path_factory.mktemp("operator")
    custom = [(API_VERSION, k.plural, k.kind, True) for k in KINDS]
    custom.append(("monitoring.coreos.com/v1", "prometheusrules", "PrometheusRule", True))
    with FakeCluster(custom) as cluster, Kubelet(cluster, NS, "agent-sre") as kubelet:
        base_text = yaml.safe_dump(BASE, sort_keys=False)
        cluster.create(
            f"/api/v1/namespaces/{NS}/configmaps",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "agent-sre-base"},
                "data": {"agent-sre.yaml": base_text},
            },  # fmt: skip
            NS,
        )
        daemons = []
        try:
            for i in range(2):
                workdir = tmp / f"daemon{i}"
                workdir.mkdir()
                env = {
                    "AGENT_SRE_ADMIN_TOKEN": TOKEN,
                    "AGENT_SRE_STATE_DIR": str(workdir / "state"),
                    "NODE_NAME": f"node-{i}",
                }
                daemon = DaemonProcess(workdir, dict(BASE), env=env).start()
                daemons.append(daemon)
                kubelet.daemons.append(daemon)
                port = int(daemon.addresses["admin"].rpartition(":")[2])
                cluster.create(
                    f"/api/v1/namespaces/{NS}/pods",
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {"name": f"agent-sre-{i}", "labels": dict(SELECTOR)},
                        "spec": {
                            "containers": [
                                {
                                    "name": "agent-sre",
                                    "ports": [{"name": "admin", "containerPort": port}],
                                }
                            ]
                        },
                        "status": {"phase": "Running", "podIP": "127.0.0.1"},
                    },  # fmt: skip
                    NS,
                )
            # an unrelated pod the label selector must leave out (kmock ignores selectors)
            cluster.create(
                f"/api/v1/namespaces/{NS}/pods",
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "other", "labels": {"app": "other"}},
                    "spec": {
                        "containers": [
                            {"name": "x", "ports": [{"name": "admin", "containerPort": 1}]}
                        ]
                    },
                    "status": {"phase": "Running", "podIP": "127.0.0.1"},
                },  # fmt: skip
                NS,
            )
            log = tmp / "operator.log"
            env = {
                **os.environ,
                "KUBECONFIG": str(cluster.kubeconfig(tmp / "kubeconfig")),
                "AGENT_SRE_ADMIN_TOKEN": TOKEN,
            }
            with log.open("ab") as out:
                operator = subprocess.Popen(
                    [sys.executable, "-m", "agent_sre_daemon.cli", "operator",
                     "--namespace", NS, "--configmap", "agent-sre",
                     "--base-configmap", "agent-sre-base", "--watch-namespace", NS,
                     "--selector", "app.kubernetes.io/name=agent-sre", "--interval", "1"],
                    env=env, stdout=out, stderr=subprocess.STDOUT,
                )  # fmt: skip
            try:
                yield Stand(cluster, kubelet, daemons, operator, log)
            finally:
                operator.terminate()
                try:
                    operator.wait(20)
                except subprocess.TimeoutExpired:
                    operator.kill()
        finally:
            for daemon in daemons:
                try:
                    daemon.stop(timeout=15)
                except Exception:
                    daemon.kill()


def test_an_slo_created_runs_on_every_daemon_without_a_restart(stand: Stand) -> None:
    pids = [d.proc.pid for d in stand.daemons if d.proc]
    spec = {"target": 0.9, "window": "7d", "sli": {"kind": "task_success"}}
    stand.create("AgentSLO", "agentslos", "tasks", spec)
    stand.wait(lambda: all("tasks" in slo_names(d) for d in stand.daemons))
    assert [d.proc.pid for d in stand.daemons if d.proc] == pids
    assert all(d.alive() for d in stand.daemons)
    applied = stand.wait(
        lambda: (
            stand.condition("agentslos", "tasks", "Applied").get("status") == "True"
            and stand.obj("agentslos", "tasks")
        )
    )
    status = applied["status"]
    assert status["applied"] == "2/2"
    assert status["observedGeneration"] == 1
    assert stand.condition("agentslos", "tasks", "Valid")["status"] == "True"

    # spans sent to both daemons: the status sums their exact counts
    for daemon in stand.daemons:
        sender = Sender(daemon.addresses["otlp_grpc"])
        assert sender.send(14)  # two AGENT_TASK spans, both successful
        sender.close()
    counted = stand.wait(
        lambda: (
            (stand.obj("agentslos", "tasks")["status"].get("valid") == 4)
            and stand.obj("agentslos", "tasks")["status"]
        )
    )
    assert counted["good"] == 4
    assert counted["attainment"] == 1.0
    assert counted["errorBudgetRemaining"] == 1.0

    # raising the target reloads the daemons; the counts survive the reload
    stand.cluster.patch_spec(cr_path("agentslos", "tasks"), {"target": 0.95})
    stand.wait(lambda: all(slo_names(d)["tasks"] == 0.95 for d in stand.daemons))
    overall = admin_get(stand.daemons[0], "/v1/slos/tasks")
    assert overall["overall"]["budget"]["total"] == 2
    assert [d.proc.pid for d in stand.daemons if d.proc] == pids
    assert stand.wait(lambda: stand.obj("agentslos", "tasks")["status"]["observedGeneration"] == 2)

    # lowering it is refused: Valid=False naming the rule, the daemons keep 0.95
    stand.cluster.patch_spec(cr_path("agentslos", "tasks"), {"target": 0.5})
    valid = stand.wait(
        lambda: (
            stand.condition("agentslos", "tasks", "Valid").get("status") == "False"
            and stand.condition("agentslos", "tasks", "Valid")
        )
    )
    assert "spec.target:" in valid["message"]
    assert "target lowered from 0.95 to 0.5" in valid["message"]
    assert "never lowered" in valid["message"]
    assert valid["observedGeneration"] == 3
    assert all(slo_names(d)["tasks"] == 0.95 for d in stand.daemons)
    assert stand.condition("agentslos", "tasks", "Applied")["status"] == "True"
    assert "applied before" in stand.condition("agentslos", "tasks", "Applied")["message"]


@pytest.mark.parametrize(
    ("kind", "plural", "name", "spec", "expected"),
    [
        (
            "AgentSLO",
            "agentslos",
            "unknown-field",
            {"target": 0.9, "sli": {"kind": "llm_success"}, "colour": "red"},
            "spec.colour: unknown key",
        ),
        (
            "AgentSLO",
            "agentslos",
            "bad-window",
            {"target": 0.9, "window": "a fortnight", "sli": {"kind": "llm_success"}},
            "spec.window: 'a fortnight' is not a duration",
        ),
        (
            "AgentRollout",
            "agentrollouts",
            "no-route",
            {"route": "nowhere", "candidate": "m2", "steps": [{"weight": 10, "pause": True}]},
            "nowhere",
        ),
        (
            "AgentChaosExperiment",
            "agentchaosexperiments",
            "no-slo",
            {"faults": [{"type": "error"}], "steady_state": {"slos_healthy": ["missing-slo"]}},
            "missing-slo",
        ),
        (
            "AgentBudget",
            "agentbudgets",
            "env-var",
            {"scope": "agent", "limit_usd": 5, "agents": ["${AGENT_SRE_ADMIN_TOKEN}"]},
            "spec.agents[0]: '${' is not allowed",
        ),
    ],  # fmt: skip
)
def test_a_bad_resource_gets_a_condition_and_the_rest_keeps_running(
    stand: Stand, kind: str, plural: str, name: str, spec: dict[str, Any], expected: str
) -> None:
    stand.create(kind, plural, name, spec)
    valid = stand.wait(
        lambda: (
            stand.condition(plural, name, "Valid").get("status") == "False"
            and stand.condition(plural, name, "Valid")
        )
    )
    assert expected in valid["message"], valid
    assert stand.condition(plural, name, "Applied")["status"] == "False"
    assert stand.operator.poll() is None
    assert all(d.alive() for d in stand.daemons)
    for daemon in stand.daemons:
        config = yaml.safe_load(daemon.config_path.read_text())
        names = [s["name"] for s in config.get("slos") or []]
        assert name not in names
    assert TOKEN not in stand.kubelet.text()  # type: ignore[operator]


def test_a_budget_and_an_experiment_are_applied_with_status(stand: Stand) -> None:
    stand.create("AgentBudget", "agentbudgets", "daily", {"scope": "agent", "limit_usd": 5})
    stand.create("AgentChaosExperiment", "agentchaosexperiments", "flaky",
                 {"faults": [{"type": "error", "status": 503}], "duration": "1m"})  # fmt: skip
    budget = stand.wait(
        lambda: (
            stand.condition("agentbudgets", "daily", "Applied").get("status") == "True"
            and stand.obj("agentbudgets", "daily")["status"]
        )
    )
    assert budget["spentUsd"] == 0.0 and budget["leftUsd"] == 5.0
    experiment = stand.wait(
        lambda: (
            stand.condition("agentchaosexperiments", "flaky", "Applied").get("status") == "True"
            and stand.obj("agentchaosexperiments", "flaky")
        )
    )
    assert experiment["status"]["phase"] == "idle"
    # the operator holds it until it is stopped on the daemons
    assert "agent-sre.io/stop-on-daemons" in experiment["metadata"]["finalizers"]
    for daemon in stand.daemons:
        assert [b["name"] for b in admin_get(daemon, "/v1/budgets")["budgets"]] == ["daily"]


def test_a_deleted_experiment_is_stopped_and_leaves_the_configuration(stand: Stand) -> None:
    stand.create("AgentChaosExperiment", "agentchaosexperiments", "doomed",
                 {"faults": [{"type": "latency", "delay": "1s"}], "duration": "10m"})  # fmt: skip
    finalizer = "agent-sre.io/stop-on-daemons"
    meta = lambda: stand.obj("agentchaosexperiments", "doomed")["metadata"]  # noqa: E731
    stand.wait(lambda: finalizer in (meta().get("finalizers") or []))
    stand.wait(lambda: stand.condition("agentchaosexperiments", "doomed", "Applied").get(
        "status") == "True")  # fmt: skip
    request = urllib.request.Request(
        stand.daemons[0].url("admin", "/v1/chaos/experiments/doomed/start"),
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 201
    stand.cluster.delete(cr_path("agentchaosexperiments", "doomed"))
    stand.wait(lambda: stand.obj("agentchaosexperiments", "doomed") is None)
    state = admin_get(stand.daemons[0], "/v1/chaos/experiments")
    assert all(e["state"] != "running" for e in state["experiments"])

    def experiments(daemon: DaemonProcess) -> list[str]:
        chaos = yaml.safe_load(daemon.config_path.read_text()).get("chaos") or {}
        return [e["name"] for e in chaos.get("experiments") or []]

    stand.wait(lambda: all("doomed" not in experiments(d) for d in stand.daemons))
    assert all("flaky" in experiments(d) for d in stand.daemons)


def test_a_resource_never_applied_does_not_hang_its_deletion(stand: Stand) -> None:
    stand.create("AgentRollout", "agentrollouts", "never", {"route": "missing", "candidate": "m",
                 "steps": [{"weight": 5, "pause": True}]})  # fmt: skip
    stand.wait(lambda: stand.condition("agentrollouts", "never", "Valid").get("status") == "False")
    stand.cluster.delete(cr_path("agentrollouts", "never"))
    stand.wait(lambda: stand.obj("agentrollouts", "never") is None)


def test_the_operator_waits_for_the_mounted_file_before_reloading(stand: Stand) -> None:
    stand.kubelet.hold()
    try:
        stand.create("AgentSLO", "agentslos", "later",
                     {"target": 0.99, "window": "7d", "sli": {"kind": "llm_success"}})  # fmt: skip
        applied = stand.wait(
            lambda: (
                stand.condition("agentslos", "later", "Applied").get("reason") == "Pending"
                and stand.condition("agentslos", "later", "Applied")
            )
        )
        assert "waiting for the mounted ConfigMap" in applied["message"]
        assert all("later" not in slo_names(d) for d in stand.daemons)
    finally:
        stand.kubelet.release()
    stand.wait(lambda: all("later" in slo_names(d) for d in stand.daemons))
    stand.wait(lambda: stand.condition("agentslos", "later", "Applied").get("status") == "True")


def test_each_slo_gets_the_prometheus_rule_agent_sre_rules_writes(stand: Stand) -> None:
    spec = {"target": 0.98, "window": "7d", "sli": {"kind": "llm_success"}}
    stand.create("AgentSLO", "agentslos", "ruled", spec)
    path = f"/apis/monitoring.coreos.com/v1/namespaces/{NS}/prometheusrules/agentslo-ruled"
    rule = stand.wait(lambda: stand.cluster.get(path))
    owner = rule["metadata"]["ownerReferences"][0]
    slo = stand.obj("agentslos", "ruled")
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "AgentSLO",
        "ruled",
        slo["metadata"]["uid"],
    )
    assert owner["controller"] is True

    def cli_groups() -> list[Any]:
        stand.wait(lambda: all("ruled" in slo_names(d) for d in stand.daemons))
        result = subprocess.run(
            [sys.executable, "-m", "agent_sre_daemon.cli", "rules", "prometheus", "--config",
             str(stand.daemons[0].config_path)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        groups = yaml.safe_load(result.stdout)["groups"]
        ours = [g for g in groups if g["name"].startswith("agent-sre-slo-ruled-")]
        assert ours
        return ours

    assert rule["spec"]["groups"] == cli_groups()
    # a raised target reaches the rule
    stand.cluster.patch_spec(cr_path("agentslos", "ruled"), {"target": 0.99})
    stand.wait(lambda: "0.99" in json.dumps(stand.cluster.get(path)["spec"]))
    assert stand.cluster.get(path)["spec"]["groups"] == cli_groups()


def test_an_unreachable_daemon_leaves_resources_pending_and_says_which(stand: Stand) -> None:
    spec = {"target": 0.9, "window": "7d", "sli": {"kind": "llm_success"}}
    stand.create("AgentSLO", "agentslos", "probe-a", spec)
    stand.wait(lambda: stand.condition("agentslos", "probe-a", "Applied").get("status") == "True")
    pods = f"/api/v1/namespaces/{NS}/pods"
    stand.cluster.create(pods, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "agent-sre-gone", "labels": dict(SELECTOR)},
        "spec": {"containers": [{"name": "agent-sre", "ports": [
            {"name": "admin", "containerPort": 1}]}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1"},
    }, NS)  # fmt: skip
    try:
        applied = stand.wait(
            lambda: (
                stand.condition("agentslos", "probe-a", "Applied").get("reason") == "Pending"
                and stand.condition("agentslos", "probe-a", "Applied")
            )
        )
        assert applied["message"].startswith("2/3 daemons run it")
        assert "agent-sre-gone: unreachable" in applied["message"]
        assert stand.obj("agentslos", "probe-a")["status"]["applied"] == "2/3"
        assert stand.operator.poll() is None
    finally:
        stand.cluster.delete(f"{pods}/agent-sre-gone")
    stand.wait(lambda: stand.condition("agentslos", "probe-a", "Applied").get("status") == "True")


def test_a_base_config_that_does_not_load_is_said_on_every_resource(stand: Stand) -> None:
    spec = {"target": 0.9, "window": "7d", "sli": {"kind": "llm_success"}}
    stand.create("AgentSLO", "agentslos", "probe-b", spec)
    stand.wait(lambda: stand.condition("agentslos", "probe-b", "Applied").get("status") == "True")
    path = f"/api/v1/namespaces/{NS}/configmaps/agent-sre-base"
    good = stand.cluster.get(path)["data"]["agent-sre.yaml"]
    before = stand.kubelet.text()
    status, _ = stand.cluster.request(
        "PATCH", path, {"data": {"agent-sre.yaml": good + "bogus: 1\n"}}
    )
    assert status == 200
    try:
        applied = stand.wait(
            lambda: (
                stand.condition("agentslos", "probe-b", "Applied").get("reason")
                == "BaseConfigInvalid"
                and stand.condition("agentslos", "probe-b", "Applied")
            )
        )
        assert "bogus: unknown key" in applied["message"]
        assert stand.kubelet.text() == before  # the daemons keep what they run
        assert all("probe-b" in slo_names(d) for d in stand.daemons)
        assert stand.operator.poll() is None
    finally:
        stand.cluster.request("PATCH", path, {"data": {"agent-sre.yaml": good}})
    stand.wait(lambda: stand.condition("agentslos", "probe-b", "Applied").get("status") == "True")


def test_a_deleted_slo_leaves_the_daemons(stand: Stand) -> None:
    spec = {"target": 0.9, "window": "7d", "sli": {"kind": "llm_success"}}
    stand.create("AgentSLO", "agentslos", "short-lived", spec)
    stand.create("AgentSLO", "agentslos", "long-lived", spec)
    stand.wait(lambda: all({"short-lived", "long-lived"} <= set(slo_names(d))
                           for d in stand.daemons))  # fmt: skip
    assert stand.cluster.delete(cr_path("agentslos", "short-lived")) == 200
    stand.wait(lambda: all("short-lived" not in slo_names(d) for d in stand.daemons))
    assert all("long-lived" in slo_names(d) for d in stand.daemons)


def test_the_operator_refuses_to_start_without_an_admin_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AGENT_SRE_ADMIN_TOKEN"}
    result = subprocess.run(
        [sys.executable, "-m", "agent_sre_daemon.cli", "operator", "--namespace", NS],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "AGENT_SRE_ADMIN_TOKEN is empty" in result.stderr
