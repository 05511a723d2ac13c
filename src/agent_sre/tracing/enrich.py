"""Enrichment: attributes the daemon adds to what it forwards, written into the protobuf."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent_sre.tracing import conventions as c

if TYPE_CHECKING:
    from collections.abc import Mapping

    from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource


@dataclass(frozen=True)
class NodeIdentity:
    """Who this daemon is, stamped on every resource it forwards."""

    node: str
    k8s_node_name: str | None = None
    k8s_pod_name: str | None = None

    @classmethod
    def from_environ(cls, node: str, environ: Mapping[str, str]) -> NodeIdentity:
        """Builds the identity from the node name and the Kubernetes downward-API variables
        (``K8S_NODE_NAME`` / ``NODE_NAME`` and ``K8S_POD_NAME`` / ``POD_NAME``)."""
        return cls(
            node=node,
            k8s_node_name=environ.get("K8S_NODE_NAME") or environ.get("NODE_NAME") or None,
            k8s_pod_name=environ.get("K8S_POD_NAME") or environ.get("POD_NAME") or None,
        )

    def resource_attributes(self) -> dict[str, str]:
        """The attributes to set on a resource (only where the resource lacks them)."""
        attrs = {c.AGENT_SRE_NODE: self.node}
        if self.k8s_node_name:
            attrs[c.K8S_NODE_NAME] = self.k8s_node_name
        if self.k8s_pod_name:
            attrs[c.K8S_POD_NAME] = self.k8s_pod_name
        return attrs


def enrich_resource(resource: Resource, attrs: Mapping[str, str]) -> None:
    """Adds each of ``attrs`` the resource does not carry yet (the sender's value wins,
    except ``agent_sre.node``, which always names the daemon that received the data)."""
    present = {kv.key: kv for kv in resource.attributes}
    for key, value in attrs.items():
        existing = present.get(key)
        if existing is None:
            add_string_attribute(resource.attributes, key, value)
        elif key == c.AGENT_SRE_NODE:
            existing.value.string_value = value


def add_string_attribute(
    attributes: RepeatedCompositeFieldContainer[KeyValue], key: str, value: str
) -> None:
    """Appends one string attribute (no duplicate check; the caller knows it is absent)."""
    kv = attributes.add()
    kv.key = key
    kv.value.string_value = value
