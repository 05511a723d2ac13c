"""A PrometheusRule per AgentSLO when the Prometheus Operator's API is served: the rules
``agent-sre rules prometheus`` writes for the same SLO (the version the daemons run), owned
by the AgentSLO so the API server's garbage collector removes it with the resource."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent_sre.slo.rules import generate_prometheus_rules
from agent_sre_operator.kinds import API_VERSION, SLO

if TYPE_CHECKING:
    from agent_sre.slo.spec import SLOSpec

GROUP_VERSION = "monitoring.coreos.com/v1"
PLURAL = "prometheusrules"


def rule_name(slo: str) -> str:
    return f"agentslo-{slo}"[:253]


def rule_object(namespace: str, name: str, uid: str, spec: SLOSpec) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "PrometheusRule",
        "metadata": {
            "name": rule_name(name),
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/managed-by": "agent-sre-operator",
                "agent-sre.io/slo": name,
            },
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": SLO.kind,
                    "name": name,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": generate_prometheus_rules([spec]),
    }


def served(api_resource_list: Any) -> bool:
    """Whether ``GET /apis/monitoring.coreos.com/v1`` lists PrometheusRules."""
    if not isinstance(api_resource_list, dict):
        return False
    return any(r.get("name") == PLURAL for r in api_resource_list.get("resources") or [])


def path(namespace: str, name: str | None = None) -> str:
    base = f"/apis/{GROUP_VERSION}/namespaces/{namespace}/{PLURAL}"
    return base if name is None else f"{base}/{name}"
