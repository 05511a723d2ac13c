"""Renders the Helm chart with Helm's own engine (helm-python-sdk embeds Helm v4)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "deployments" / "helm" / "agent-sre"
MANIFESTS_DIR = ROOT / "deployments" / "kubernetes"
RELEASE = "agent-sre"
NAMESPACE = "agent-sre"
KUBE_VERSION = "1.30.0"


def render(
    values: dict[str, Any] | None = None,
    *,
    api_versions: list[str] | None = None,
    name: str = RELEASE,
    namespace: str = NAMESPACE,
) -> dict[str, str]:
    """Template path -> rendered text, as ``helm template`` would print it.

    ``api_versions`` plays ``helm template --api-versions``: the libhelm_c render call takes
    it, the Python wrapper's ``Chart.render`` does not pass it on yet.
    """
    import helm_python as helm
    from helm_python import _native

    chart = helm.Chart.load(CHART_DIR)
    if api_versions is None:
        return chart.render(values, name=name, namespace=namespace)
    opts = {"name": name, "namespace": namespace, "api_versions": api_versions}
    rendered = _native.call_string(
        "helm_render", chart._raw(), json.dumps(values or {}), json.dumps(opts)
    )
    out: dict[str, str] = json.loads(rendered)
    return out


def documents(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object of a rendering (NOTES.txt left out)."""
    docs = []
    for path, text in sorted(rendered.items()):
        if not path.endswith(".yaml"):
            continue
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in docs}


def daemon_config_text(docs: list[dict[str, Any]]) -> str:
    text: str = by_kind(docs)["ConfigMap"]["data"]["agent-sre.yaml"]
    return text
