"""deployments/kubernetes/ is the chart rendered by `make manifests`, and valid Kubernetes."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

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


@pytest.mark.parametrize("name", ["daemonset.yaml", "deployment.yaml"])
def test_manifests_are_valid_kubernetes(name: str) -> None:
    docs = [d for d in yaml.safe_load_all((MANIFESTS_DIR / name).read_text()) if d]
    assert docs[0]["kind"] == "Namespace"
    for doc in docs:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == docs[0]["metadata"]["name"]
