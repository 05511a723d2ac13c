"""A small stand for operator tests of their own: kmock's API, the stand-in kubelet, one real
daemon served as a pod, the chart's base ConfigMap, and real operator processes on demand."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import yaml

from agent_sre_operator.kinds import API_VERSION, KINDS
from tests.operator.test_operator_kmock import BASE, NS, SELECTOR, TOKEN, cr_path
from tests.support.daemon import DaemonProcess
from tests.support.kube import FakeCluster, Kubelet

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

PODS = f"/api/v1/namespaces/{NS}/pods"


class Single:
    def __init__(
        self, tmp: Path, cluster: FakeCluster, kubelet: Kubelet, base: dict[str, Any]
    ) -> None:
        self.tmp, self.cluster, self.kubelet, self.base = tmp, cluster, kubelet, base
        self.daemons: dict[int, DaemonProcess] = {}
        self.operators: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def daemon(self) -> DaemonProcess | None:
        return self.daemons.get(0)

    def start_daemon(self, index: int = 0) -> DaemonProcess:
        """Starts daemon ``index`` (again, on the same state and file) and serves it as the
        pod ``agent-sre-<index>`` at its admin port."""
        workdir = self.tmp / f"daemon{index}"
        workdir.mkdir(exist_ok=True)
        env = {"AGENT_SRE_ADMIN_TOKEN": TOKEN, "AGENT_SRE_STATE_DIR": str(workdir / "state"),
               "NODE_NAME": f"node-{index}"}  # fmt: skip
        config = self.base
        before = self.daemons.get(index)
        if before is not None and before.config_path.exists():
            config = yaml.safe_load(before.config_path.read_text())
        daemon = DaemonProcess(workdir, dict(config), env=env).start()
        self.daemons[index] = daemon
        self.kubelet.daemons[:] = [self.daemons[i] for i in sorted(self.daemons)]
        port = int(daemon.addresses["admin"].rpartition(":")[2])
        self.cluster.delete(f"{PODS}/agent-sre-{index}")
        self.cluster.create(PODS, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"agent-sre-{index}", "labels": dict(SELECTOR)},
            "spec": {"containers": [{"name": "agent-sre", "ports": [
                {"name": "admin", "containerPort": port}]}]},
            "status": {"phase": "Running", "podIP": "127.0.0.1"},
        }, NS)  # fmt: skip
        return daemon

    def start_operator(self, name: str, *extra: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.cluster.kubeconfig(self.tmp / "kubeconfig")),
            "AGENT_SRE_ADMIN_TOKEN": TOKEN,
            "POD_NAME": name,
        }
        with (self.tmp / f"{name}.log").open("ab") as out:
            operator = subprocess.Popen(
                [sys.executable, "-m", "agent_sre_daemon.cli", "operator",
                 "--namespace", NS, "--configmap", "agent-sre",
                 "--base-configmap", "agent-sre-base", "--watch-namespace", NS,
                 "--selector", "app.kubernetes.io/name=agent-sre", "--interval", "1", *extra],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.operators[name] = operator
        return operator

    def create_slo(self, name: str, spec: dict[str, Any]) -> None:
        body = {"apiVersion": API_VERSION, "kind": "AgentSLO", "metadata": {"name": name},
                "spec": spec}  # fmt: skip
        self.cluster.create(cr_path("agentslos"), body, NS)

    def status(self, name: str) -> dict[str, Any]:
        obj = self.cluster.get(cr_path("agentslos", name)) or {}
        return dict(obj.get("status") or {})

    def condition(self, name: str, type_: str) -> dict[str, Any]:
        for condition in self.status(name).get("conditions") or []:
            if condition.get("type") == type_:
                return dict(condition)
        return {}

    def wait(self, what: Any, timeout: float = 90.0) -> Any:
        try:
            return self.cluster.wait_for(what, timeout)
        except AssertionError:
            for name in self.operators:
                print(name, (self.tmp / f"{name}.log").read_text(errors="replace")[-4000:])
            raise

    def stop(self) -> None:
        for operator in self.operators.values():
            if operator.poll() is None:
                operator.terminate()
                try:
                    operator.wait(20)
                except subprocess.TimeoutExpired:
                    operator.kill()
        for daemon in self.daemons.values():
            try:
                daemon.stop(timeout=15)
            except Exception:
                daemon.kill()


@contextlib.contextmanager
def single(tmp: Path, base: dict[str, Any] | None = None, daemons: int = 1) -> Iterator[Single]:
    """The stand with ``daemons`` daemons (``base``: the chart's base configuration)."""
    base = BASE if base is None else base
    custom = [(API_VERSION, k.plural, k.kind, True) for k in KINDS]
    with FakeCluster(custom) as cluster, Kubelet(cluster, NS, "agent-sre") as kubelet:
        cluster.create(f"/api/v1/namespaces/{NS}/configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "agent-sre-base"},
            "data": {"agent-sre.yaml": yaml.safe_dump(base, sort_keys=False)},
        }, NS)  # fmt: skip
        stand = Single(tmp, cluster, kubelet, base)
        try:
            for index in range(daemons):
                stand.start_daemon(index)
            yield stand
        finally:
            stand.stop()
