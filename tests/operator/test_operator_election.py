"""Two replicas of the real operator against one kmock API and one real daemon: only the
holder of the Lease writes; when it dies, the other takes over and the resources keep being
applied. Which replica wrote what is read from the API's write log (the User-Agent carries
the replica's identity), as from an API server's audit log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from agent_sre_operator.kinds import API_VERSION, KINDS
from agent_sre_operator.lease import lease_path
from tests.operator.test_operator_kmock import BASE, NS, SELECTOR, TOKEN, cr_path, slo_names
from tests.support.daemon import DaemonProcess
from tests.support.kube import FakeCluster, Kubelet

if TYPE_CHECKING:
    from pathlib import Path

pytest.importorskip("kmock")
pytest.importorskip("kopf")

pytestmark = pytest.mark.integration

LEASE = "agent-sre-operator"


def start_operator(cluster: FakeCluster, tmp: Path, name: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig(tmp / "kubeconfig")),
        "AGENT_SRE_ADMIN_TOKEN": TOKEN,
        "POD_NAME": name,
    }
    with (tmp / f"{name}.log").open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "agent_sre_daemon.cli", "operator",
             "--namespace", NS, "--configmap", "agent-sre", "--base-configmap", "agent-sre-base",
             "--watch-namespace", NS, "--selector", "app.kubernetes.io/name=agent-sre",
             "--interval", "1", "--leader-lease", LEASE, "--lease-duration", "3"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def writers(cluster: FakeCluster, since: int = 0) -> set[str]:
    """The replicas (pod names) that wrote anything but the Lease since write ``since``."""
    return {
        agent.partition("/")[2].rpartition("_")[0]
        for _method, path, agent in cluster.writes[since:]
        if agent.startswith("agent-sre-operator/") and "/leases" not in path
    }


def applied(cluster: FakeCluster, name: str) -> Any:
    obj = cluster.get(cr_path("agentslos", name)) or {}
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition["type"] == "Applied" and condition["status"] == "True":
            return obj
    return None


def test_two_replicas_one_writes_and_the_other_takes_over(tmp_path: Path) -> None:
    custom = [(API_VERSION, k.plural, k.kind, True) for k in KINDS]
    with FakeCluster(custom) as cluster, Kubelet(cluster, NS, "agent-sre") as kubelet:
        cluster.create(f"/api/v1/namespaces/{NS}/configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "agent-sre-base"},
            "data": {"agent-sre.yaml": yaml.safe_dump(BASE, sort_keys=False)},
        }, NS)  # fmt: skip
        workdir = tmp_path / "daemon"
        workdir.mkdir()
        env = {"AGENT_SRE_ADMIN_TOKEN": TOKEN, "AGENT_SRE_STATE_DIR": str(workdir / "state")}
        daemon = DaemonProcess(workdir, dict(BASE), env=env).start()
        operators: dict[str, subprocess.Popen[bytes]] = {}
        try:
            kubelet.daemons.append(daemon)
            port = int(daemon.addresses["admin"].rpartition(":")[2])
            cluster.create(f"/api/v1/namespaces/{NS}/pods", {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "agent-sre-0", "labels": dict(SELECTOR)},
                "spec": {"containers": [{"name": "agent-sre", "ports": [
                    {"name": "admin", "containerPort": port}]}]},
                "status": {"phase": "Running", "podIP": "127.0.0.1"},
            }, NS)  # fmt: skip
            for name in ("op-a", "op-b"):
                operators[name] = start_operator(cluster, tmp_path, name)

            def holder() -> str:
                lease = cluster.get(lease_path(NS, LEASE)) or {}
                identity = str((lease.get("spec") or {}).get("holderIdentity") or "")
                return identity.rpartition("_")[0]

            def wait(what: Any, timeout: float = 90.0) -> Any:
                try:
                    return cluster.wait_for(what, timeout)
                except AssertionError:
                    for name in operators:
                        print(name, (tmp_path / f"{name}.log").read_text()[-4000:])
                    raise

            first = wait(holder)
            standby = "op-b" if first == "op-a" else "op-a"
            spec = {"target": 0.9, "window": "7d", "sli": {"kind": "task_success"}}
            cluster.create(cr_path("agentslos"), {"apiVersion": API_VERSION, "kind": "AgentSLO",
                           "metadata": {"name": "one"}, "spec": spec}, NS)  # fmt: skip
            wait(lambda: "one" in slo_names(daemon))
            wait(lambda: applied(cluster, "one"))
            # the ConfigMap, the reload's status and the SLO's status: all by the holder
            assert writers(cluster) == {first}
            assert holder() == first
            assert operators[standby].poll() is None

            # the holder dies without a word (no release): the other takes over
            operators[first].send_signal(signal.SIGKILL)
            operators[first].wait(10)
            mark = len(cluster.writes)
            wait(lambda: holder() == standby)
            assert cluster.get(lease_path(NS, LEASE))["spec"]["leaseTransitions"] == 1
            cluster.create(cr_path("agentslos"), {"apiVersion": API_VERSION, "kind": "AgentSLO",
                           "metadata": {"name": "two"}, "spec": spec}, NS)  # fmt: skip
            wait(lambda: "two" in slo_names(daemon))
            wait(lambda: applied(cluster, "two"))
            assert writers(cluster, mark) == {standby}

            # the first comes back: it stands by, the second keeps writing
            operators[first] = start_operator(cluster, tmp_path, first)
            mark = len(cluster.writes)
            cluster.patch_spec(cr_path("agentslos", "two"), {"target": 0.95})
            wait(lambda: slo_names(daemon)["two"] == 0.95)
            wait(lambda: (cluster.get(cr_path("agentslos", "two")) or {}).get("status", {})
                 .get("observedGeneration") == 2)  # fmt: skip
            assert writers(cluster, mark) == {standby}
            assert holder() == standby
        finally:
            for operator in operators.values():
                if operator.poll() is None:
                    operator.terminate()
                    try:
                        operator.wait(20)
                    except subprocess.TimeoutExpired:
                        operator.kill()
            daemon.stop(timeout=15)
