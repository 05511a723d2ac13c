"""deployments/kubernetes/ is the chart rendered by `make manifests`, and valid Kubernetes."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.deploy.chart import KUBE_VERSION, MANIFESTS_DIR, ROOT

if TYPE_CHECKING:
    from pathlib import Path

pytest.importorskip("helm_python", reason="helm-python-sdk (dev extra) embeds Helm")
kubernetes_validate = pytest.importorskip("kubernetes_validate")


def test_manifests_are_in_sync_with_the_chart(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "deployments" / "render_manifests.py"), str(tmp_path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    fresh = sorted(p.name for p in tmp_path.glob("*.yaml"))
    assert fresh == sorted(p.name for p in MANIFESTS_DIR.glob("*.yaml"))
    for name in fresh:
        assert (MANIFESTS_DIR / name).read_text() == (tmp_path / name).read_text(), (
            f"deployments/kubernetes/{name} is stale: run `make manifests`"
        )


CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
LEVELS = {"daemonset.yaml": "privileged", "deployment.yaml": "restricted",
          "operator.yaml": "privileged"}  # fmt: skip


@pytest.mark.parametrize("name", sorted(LEVELS))
def test_manifests_are_valid_kubernetes(name: str) -> None:
    docs = [d for d in yaml.safe_load_all((MANIFESTS_DIR / name).read_text()) if d]
    assert docs[0]["kind"] == "Namespace"
    for doc in docs:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"]["namespace"] == docs[0]["metadata"]["name"]
    labels = docs[0]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == LEVELS[name]


def _restricted_problems(pod: dict[str, Any]) -> list[str]:
    """The checks of Pod Security `restricted` that these pods could break."""
    problems = [f"pod {key}" for key in ("hostNetwork", "hostPID", "hostIPC") if pod.get(key)]
    context = pod.get("securityContext") or {}
    if context.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append("pod seccompProfile")
    if context.get("runAsUser") == 0:
        problems.append("pod runAsUser 0")
    for volume in pod.get("volumes") or []:
        if "hostPath" in volume:
            problems.append(f"hostPath volume {volume['name']}")
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        sc = container.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{container['name']}: allowPrivilegeEscalation")
        if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc["capabilities"].get("add"):
            problems.append(f"{container['name']}: capabilities")
        if not (sc.get("runAsNonRoot") or context.get("runAsNonRoot")):
            problems.append(f"{container['name']}: runAsNonRoot")
        if sc.get("runAsUser") == 0:
            problems.append(f"{container['name']}: runAsUser 0")
        if sc.get("privileged"):
            problems.append(f"{container['name']}: privileged")
        problems += [f"{container['name']}: hostPort {p['hostPort']}"
                     for p in container.get("ports", []) if p.get("hostPort")]  # fmt: skip
    return problems


def test_the_levels_are_the_ones_the_pods_need() -> None:
    """`restricted` holds for the Deployment and the operator; the DaemonSet's host ports
    are why its Namespace is `privileged`."""
    pods = {}
    for name in LEVELS:
        for doc in yaml.safe_load_all((MANIFESTS_DIR / name).read_text()):
            if doc and doc["kind"] in ("Deployment", "DaemonSet"):
                pods[(name, doc["metadata"]["name"])] = doc["spec"]["template"]["spec"]
    assert _restricted_problems(pods[("deployment.yaml", "agent-sre")]) == []
    assert _restricted_problems(pods[("operator.yaml", "agent-sre-operator")]) == []
    daemonset = _restricted_problems(pods[("daemonset.yaml", "agent-sre")])
    assert daemonset and all("hostPort" in p for p in daemonset), daemonset


def test_the_daemonset_without_host_ports_and_with_emptydir_meets_restricted() -> None:
    """The setting the chart's README (Pod Security) documents as `restricted`: agents reach
    their node's daemon through the node-local Service instead of host ports."""
    from tests.deploy.chart import documents, render

    ports = {name: {"hostPort": None} for name in ("otlp-grpc", "otlp-http", "proxy")}
    docs = documents(render({"mode": "daemonset", "ports": ports,
                             "stateVolume": {"type": "emptyDir"}}))  # fmt: skip
    daemonset = next(d for d in docs if d["kind"] == "DaemonSet")
    assert _restricted_problems(daemonset["spec"]["template"]["spec"]) == []
    service = next(d for d in docs if d["kind"] == "Service")
    assert service["spec"]["internalTrafficPolicy"] == "Local"
    # and the hostPath state the README names `privileged` for is caught by the checks
    docs = documents(render({"mode": "daemonset", "ports": ports,
                             "stateVolume": {"type": "hostPath"}}))  # fmt: skip
    daemonset = next(d for d in docs if d["kind"] == "DaemonSet")
    problems = _restricted_problems(daemonset["spec"]["template"]["spec"])
    assert any("hostPath" in p for p in problems), problems


def test_the_kustomize_base_and_the_example_overlay_build() -> None:
    import shutil

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    for directory in (MANIFESTS_DIR, ROOT / "deployments" / "kustomize" / "example"):
        result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True,
                                text=True, check=False)  # fmt: skip
        assert result.returncode == 0, result.stderr
        docs = [d for d in yaml.safe_load_all(result.stdout) if d]
        for doc in docs:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        daemonset = next(d for d in docs if d["kind"] == "DaemonSet")
        assert daemonset["metadata"]["labels"]["app.kubernetes.io/part-of"] == "agent-sre"
    env = {e["name"] for e in daemonset["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert {"AGENT_SRE_UPSTREAM", "AGENT_SRE_ADMIN_TOKEN"} <= env
