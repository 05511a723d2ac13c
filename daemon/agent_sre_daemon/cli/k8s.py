"""``agent-sre k8s sidecar``: a strategic merge patch that adds the daemon as a sidecar.

The patch adds the ``agent-sre`` container (listening on the pod's loopback, metrics and
probes on the pod address), its ``state_dir`` volume, and the environment an agent needs
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OPENAI_BASE_URL``, ``ANTHROPIC_BASE_URL``) to the named
containers of a Deployment (or any workload with a pod template)::

    kubectl patch deployment my-agent --type strategic \\
        -p "$(agent-sre k8s sidecar --agent-container agent)"
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from agent_sre import __version__

if TYPE_CHECKING:
    import argparse

EXIT_OK = 0
EXIT_USAGE = 2

DEFAULT_IMAGE = f"ghcr.io/agent-sre/agent-sre:{__version__}"
CONTAINER_NAME = "agent-sre"
STATE_VOLUME = "agent-sre-state"
CONFIG_VOLUME = "agent-sre-config"
STATE_DIR = "/var/lib/agent-sre"
CONFIG_DIR = "/etc/agent-sre"
UID = 10001
PORTS = {"otlp_grpc": 4317, "otlp_http": 4318, "proxy": 8790, "metrics": 9464}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class SidecarOptions:
    """What ``agent-sre k8s sidecar`` was asked for."""

    agent_containers: tuple[str, ...]
    """Containers of the pod that get the agent environment."""
    image: str = DEFAULT_IMAGE
    config_map: str = ""
    """A ConfigMap whose ``agent-sre.yaml`` replaces the image's configuration."""
    admin_secret: str = ""
    """A Secret whose ``token`` key becomes ``AGENT_SRE_ADMIN_TOKEN``."""
    upstream: str = ""
    """``AGENT_SRE_UPSTREAM``: where enriched spans are forwarded."""
    native: bool = False
    """Kubernetes >= 1.29 native sidecar: an init container with ``restartPolicy: Always``,
    started before the agent and stopped after it."""
    linux_only: bool = True
    """Adds ``nodeSelector: {kubernetes.io/os: linux}`` (the image is Linux only)."""
    resources: dict[str, Any] = field(
        default_factory=lambda: {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"memory": "256Mi"},
        }
    )


def option_problems(options: SidecarOptions) -> list[str]:
    """What makes ``options`` unusable (empty when they are fine)."""
    problems = []
    if not options.agent_containers:
        problems.append("--agent-container: name at least one container of the agent")
    for name in (*options.agent_containers, options.config_map, options.admin_secret):
        if name and not _DNS_LABEL.match(name):
            problems.append(f"{name!r}: not a Kubernetes name (lower case, digits, '-')")
    if CONTAINER_NAME in options.agent_containers:
        problems.append(f"--agent-container: {CONTAINER_NAME!r} is the sidecar's own name")
    if not options.image:
        problems.append("--image: must not be empty")
    return problems


def agent_env() -> list[dict[str, str]]:
    """The environment that points an agent's exporters and SDKs at the sidecar."""
    return [
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": f"http://localhost:{PORTS['otlp_grpc']}"},
        {"name": "OTEL_EXPORTER_OTLP_PROTOCOL", "value": "grpc"},
        {"name": "OPENAI_BASE_URL", "value": f"http://localhost:{PORTS['proxy']}/openai/v1"},
        {"name": "ANTHROPIC_BASE_URL", "value": f"http://localhost:{PORTS['proxy']}/anthropic"},
    ]


def sidecar_container(options: SidecarOptions) -> dict[str, Any]:
    """The daemon's container: receivers and proxy on loopback (only the pod's containers
    reach them), metrics and probes on the pod address, admin API on loopback."""
    env: list[dict[str, Any]] = [
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "AGENT_SRE_LISTEN_HOST", "value": "127.0.0.1"},
        {"name": "AGENT_SRE_STATE_DIR", "value": STATE_DIR},
    ]
    if options.upstream:
        env.append({"name": "AGENT_SRE_UPSTREAM", "value": options.upstream})
    if options.admin_secret:
        env.append(
            {
                "name": "AGENT_SRE_ADMIN_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": options.admin_secret, "key": "token"}},
            }
        )
    mounts: list[dict[str, Any]] = [{"name": STATE_VOLUME, "mountPath": STATE_DIR}]
    args = ["run"]
    if options.config_map:
        mounts.append({"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True})
        args.append(f"--config={CONFIG_DIR}/agent-sre.yaml")
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": options.image,
        "args": args,
        "env": env,
        "ports": [
            {"name": "sre-metrics", "containerPort": PORTS["metrics"], "protocol": "TCP"},
        ],
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": PORTS["metrics"]},
            "periodSeconds": 10,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": PORTS["metrics"]},
            "periodSeconds": 5,
        },
        "resources": options.resources,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            # Pod Security "restricted" asks for it; set on the container so the patch
            # leaves the agent pod's own securityContext alone
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
    }
    if options.native:
        container["restartPolicy"] = "Always"
    return container


def sidecar_patch(options: SidecarOptions) -> dict[str, Any]:
    """A strategic merge patch for a workload with ``spec.template`` (Deployment,
    StatefulSet, DaemonSet, Job template): containers and volumes merge by name, so applying
    it twice changes nothing.

    Raises:
        ValueError: when ``option_problems`` finds any.
    """
    problems = option_problems(options)
    if problems:
        raise ValueError("; ".join(problems))
    volumes: list[dict[str, Any]] = [{"name": STATE_VOLUME, "emptyDir": {"sizeLimit": "1Gi"}}]
    if options.config_map:
        volumes.append({"name": CONFIG_VOLUME, "configMap": {"name": options.config_map}})
    agents = [{"name": name, "env": agent_env()} for name in options.agent_containers]
    sidecar = sidecar_container(options)
    pod: dict[str, Any] = {"volumes": volumes}
    if options.linux_only:
        # merged into the pod's own selector (a strategic merge patch merges maps)
        pod["nodeSelector"] = {"kubernetes.io/os": "linux"}
    if options.native:
        pod["initContainers"] = [sidecar]
        pod["containers"] = agents
    else:
        pod["containers"] = [*agents, sidecar]
    return {"spec": {"template": {"spec": pod}}}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ``k8s sidecar`` to the ``agent-sre`` command."""
    k8s = subparsers.add_parser("k8s", help="Kubernetes helpers")
    k8s.set_defaults(func=lambda args: _usage(k8s))
    commands = k8s.add_subparsers(title="k8s commands")
    sidecar = commands.add_parser(
        "sidecar",
        help="print a patch that adds agent-sre as a sidecar to a Deployment",
        description=(
            "Prints a strategic merge patch adding the agent-sre container, its state_dir "
            "volume and the agent's environment (OTEL_EXPORTER_OTLP_ENDPOINT, OPENAI_BASE_URL, "
            "ANTHROPIC_BASE_URL). Apply it with: kubectl patch deployment NAME --type "
            'strategic -p "$(agent-sre k8s sidecar --agent-container CONTAINER)"'
        ),
    )
    sidecar.add_argument(
        "--agent-container",
        action="append",
        default=[],
        metavar="NAME",
        help="container of the agent that gets the environment (repeatable; required)",
    )
    sidecar.add_argument("--image", default=DEFAULT_IMAGE, help="agent-sre image")
    sidecar.add_argument(
        "--config-map", default="", help="ConfigMap with agent-sre.yaml (default: the image's)"
    )
    sidecar.add_argument(
        "--admin-secret", default="", help="Secret whose 'token' key is the admin token"
    )
    sidecar.add_argument("--upstream", default="", help="upstream OTLP endpoint to forward to")
    sidecar.add_argument(
        "--native",
        action="store_true",
        help="native sidecar (init container, restartPolicy Always; Kubernetes >= 1.29)",
    )
    sidecar.add_argument(
        "--any-os",
        action="store_true",
        help="leave out the nodeSelector kubernetes.io/os: linux (the image is Linux only)",
    )
    sidecar.add_argument(
        "--format", choices=("json", "yaml"), default="json", help="patch format (json)"
    )
    sidecar.set_defaults(func=cmd_sidecar)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def cmd_sidecar(args: argparse.Namespace) -> int:
    options = SidecarOptions(
        agent_containers=tuple(args.agent_container),
        image=args.image,
        config_map=args.config_map,
        admin_secret=args.admin_secret,
        upstream=args.upstream,
        native=args.native,
        linux_only=not args.any_os,
    )
    problems = option_problems(options)
    if problems:
        for problem in problems:
            print(f"agent-sre k8s sidecar: {problem}", file=sys.stderr)
        return EXIT_USAGE
    patch = sidecar_patch(options)
    if args.format == "yaml":
        sys.stdout.write(yaml.safe_dump(patch, sort_keys=False))
    else:
        print(json.dumps(patch, indent=2))
    return EXIT_OK
