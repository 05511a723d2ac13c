"""`agent-sre k8s sidecar`: the patch itself, and the patch applied by kubectl offline."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from agent_sre_daemon.cli.k8s import SidecarOptions, option_problems, sidecar_patch

if TYPE_CHECKING:
    from pathlib import Path

kubernetes_validate = pytest.importorskip("kubernetes_validate")

CLI = [sys.executable, "-m", "agent_sre_daemon.cli"]
AGENT_ENV = {
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4317",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    "OPENAI_BASE_URL": "http://localhost:8790/openai/v1",
    "ANTHROPIC_BASE_URL": "http://localhost:8790/anthropic",
}
DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "support-agent"},
    "spec": {
        "selector": {"matchLabels": {"app": "support-agent"}},
        "template": {
            "metadata": {"labels": {"app": "support-agent"}},
            "spec": {
                "containers": [
                    {
                        "name": "agent",
                        "image": "example/agent:1",
                        "env": [{"name": "LOG_LEVEL", "value": "debug"}],
                    },
                    {"name": "helper", "image": "example/helper:1"},
                ]
            },
        },
    },
}


def _sidecar(cli_args: list[str]) -> str:
    result = subprocess.run(
        [*CLI, "k8s", "sidecar", *cli_args], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _kubectl_patch(tmp_path: Path, patch: str) -> dict[str, Any]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    manifest = tmp_path / "deployment.yaml"
    manifest.write_text(yaml.safe_dump(DEPLOYMENT))
    result = subprocess.run(
        [kubectl, "patch", "--local", "--dry-run=client", "-f", str(manifest),
         "--type", "strategic", "-p", patch, "-o", "yaml"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    patched: dict[str, Any] = yaml.safe_load(result.stdout)
    return patched


def test_kubectl_patch_adds_the_sidecar_and_points_the_agent_at_it(tmp_path: Path) -> None:
    patched = _kubectl_patch(tmp_path, _sidecar(["--agent-container", "agent",
                                                 "--config-map", "agent-sre-config",
                                                 "--admin-secret", "agent-sre-admin"]))  # fmt: skip
    kubernetes_validate.validate(patched, "1.30.0", strict=True)
    pod = patched["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert set(containers) == {"agent", "helper", "agent-sre"}
    agent_env = {e["name"]: e.get("value") for e in containers["agent"]["env"]}
    assert agent_env == AGENT_ENV | {"LOG_LEVEL": "debug"}  # the agent's own env is kept
    assert "env" not in containers["helper"]  # only the named containers
    sidecar = containers["agent-sre"]
    env = {e["name"]: e for e in sidecar["env"]}
    assert env["AGENT_SRE_LISTEN_HOST"]["value"] == "127.0.0.1"
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["AGENT_SRE_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "agent-sre-admin",
        "key": "token",
    }
    assert sidecar["args"] == ["run", "--config=/etc/agent-sre/agent-sre.yaml"]
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 9464}
    assert sidecar["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 9464}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["agent-sre-config"]["configMap"] == {"name": "agent-sre-config"}
    mounts = {m["name"]: m["mountPath"] for m in sidecar["volumeMounts"]}
    assert mounts["agent-sre-state"] == env["AGENT_SRE_STATE_DIR"]["value"]
    assert "agent-sre-state" in volumes


def test_patch_applied_twice_changes_nothing(tmp_path: Path) -> None:
    patch = _sidecar(["--agent-container", "agent"])
    once = _kubectl_patch(tmp_path, patch)
    manifest = tmp_path / "once.yaml"
    manifest.write_text(yaml.safe_dump(once))
    result = subprocess.run(
        ["kubectl", "patch", "--local", "--dry-run=client", "-f", str(manifest),
         "--type", "strategic", "-p", patch, "-o", "yaml"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert yaml.safe_load(result.stdout) == once


def test_native_sidecar_is_an_always_restarting_init_container(tmp_path: Path) -> None:
    patched = _kubectl_patch(
        tmp_path, _sidecar(["--agent-container", "agent", "--native", "--format", "yaml"])
    )
    kubernetes_validate.validate(patched, "1.30.0", strict=True)
    pod = patched["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["agent-sre"]
    assert pod["initContainers"][0]["restartPolicy"] == "Always"
    assert "agent-sre" not in {c["name"] for c in pod["containers"]}


def test_patch_is_plain_data_for_kustomize_and_the_future_operator() -> None:
    patch = sidecar_patch(SidecarOptions(agent_containers=("a", "b"), upstream="collector:4317"))
    json.dumps(patch)  # serializable as is
    containers = patch["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["a", "b", "agent-sre"]
    env = {e["name"]: e.get("value") for e in containers[2]["env"]}
    assert env["AGENT_SRE_UPSTREAM"] == "collector:4317"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--agent-container: name at least one container"),
        (["--agent-container", "Agent_1"], "'Agent_1': not a Kubernetes name"),
        (["--agent-container", "agent-sre"], "'agent-sre' is the sidecar's own name"),
    ],
)
def test_bad_options_exit_2_with_a_reason(args: list[str], message: str) -> None:
    result = subprocess.run(
        [*CLI, "k8s", "sidecar", *args], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_option_problems_and_patch_agree() -> None:
    options = SidecarOptions(agent_containers=())
    assert option_problems(options)
    with pytest.raises(ValueError, match="name at least one container"):
        sidecar_patch(options)


def test_the_sidecar_meets_pod_security_restricted() -> None:
    """RuntimeDefault seccomp, every capability dropped, no root, no escalation: what the
    `restricted` Pod Security level asks of a container."""
    patch = json.loads(_sidecar(["--agent-container", "agent", "--format", "json"]))
    pod = patch["spec"]["template"]["spec"]
    sidecar = next(c for c in pod["containers"] if c["name"] == "agent-sre")
    context = sidecar["securityContext"]
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["runAsNonRoot"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert all("hostPath" not in v for v in pod["volumes"])


def test_the_sidecar_keeps_the_pod_on_linux_nodes_unless_told() -> None:
    """The image is Linux only: the patch adds the OS node selector (merged into the pod's
    own selector by the strategic merge), and --any-os leaves it out."""
    patch = json.loads(_sidecar(["--agent-container", "agent", "--format", "json"]))
    assert patch["spec"]["template"]["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    patch = json.loads(_sidecar(["--agent-container", "agent", "--any-os"]))
    assert "nodeSelector" not in patch["spec"]["template"]["spec"]
