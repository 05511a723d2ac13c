"""``agent-sre operator``: runs the operator (kopf) until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import TYPE_CHECKING, Any

from agent_sre_operator.kinds import API_VERSION, GROUP, KINDS, VERSION

if TYPE_CHECKING:
    import argparse

log = logging.getLogger("agent_sre_operator")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument(
        "--namespace",
        default=env("POD_NAMESPACE", "default"),
        help="namespace of the ConfigMaps and the daemon pods (default: $POD_NAMESPACE)",
    )
    parser.add_argument(
        "--configmap",
        default=env("AGENT_SRE_OPERATOR_CONFIGMAP", "agent-sre"),
        help="the ConfigMap the daemons mount, written by the operator (key agent-sre.yaml)",
    )
    parser.add_argument(
        "--base-configmap",
        default=env("AGENT_SRE_OPERATOR_BASE_CONFIGMAP", "agent-sre-base"),
        help="the chart's base configuration (key agent-sre.yaml), read",
    )
    parser.add_argument(
        "--selector",
        default=env("AGENT_SRE_OPERATOR_SELECTOR", "app.kubernetes.io/name=agent-sre"),
        help="labels of the daemon pods, k=v[,k=v]; their admin port is the container port "
        "named 'admin'",
    )
    watch = parser.add_mutually_exclusive_group()
    watch.add_argument(
        "--watch-namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch resources in this namespace (repeatable; default: --namespace)",
    )
    watch.add_argument(
        "--all-namespaces", action="store_true", help="watch resources in every namespace"
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=float(env("AGENT_SRE_OPERATOR_INTERVAL", "15")),
        help="seconds between passes without events (status, pending reloads)",
    )
    parser.add_argument(
        "--leader-lease",
        default=env("AGENT_SRE_OPERATOR_LEASE", ""),
        metavar="NAME",
        help="leader election: only the replica holding this coordination.k8s.io Lease (in "
        "--namespace) writes; the others stand by. Empty: no election, run one replica",
    )
    parser.add_argument(
        "--lease-duration",
        type=float,
        default=float(env("AGENT_SRE_OPERATOR_LEASE_DURATION", "15")),
        help="seconds without a renewal after which a standby takes the Lease (default 15)",
    )
    parser.add_argument(
        "--prometheus-rules",
        choices=("auto", "off"),
        default=env("AGENT_SRE_OPERATOR_PROMETHEUS_RULES", "auto"),
        help="a PrometheusRule per AgentSLO when the cluster serves monitoring.coreos.com/v1 "
        "(auto), or none (off)",
    )
    parser.add_argument(
        "--prometheus-url",
        default=env("AGENT_SRE_OPERATOR_PROMETHEUS_URL", ""),
        metavar="URL",
        help="Prometheus holding the rules `agent-sre rules prometheus` writes: AgentSLO "
        "attainment, budget left and burn rates from it (empty: from the daemons)",
    )
    parser.add_argument("--liveness", default="", help="e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument("--verbose", action="store_true")


def parse_selector(text: str) -> dict[str, str]:
    labels = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise SystemExit(f"--selector: {part!r} is not key=value")
        labels[key.strip()] = value.strip()
    return labels


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        import kopf  # noqa: F401
    except ImportError:
        log.error("the operator needs kopf: pip install 'agent-sre[operator]'")
        return 2
    url = args.prometheus_url
    if url and (not url.startswith(("http://", "https://")) or any(c.isspace() for c in url)):
        log.error("--prometheus-url: %r is not an http(s) URL", url)
        return 2
    if not 2 <= args.lease_duration <= 3600:  # NaN fails this too
        log.error("--lease-duration: %s is not between 2 and 3600 seconds", args.lease_duration)
        return 2
    token = os.environ.get("AGENT_SRE_ADMIN_TOKEN", "")
    if not token:
        log.error("AGENT_SRE_ADMIN_TOKEN is empty: the daemons refuse reloads without it")
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(args, token))
    return 0


async def _run(args: argparse.Namespace, token: str) -> None:
    import kopf

    from agent_sre_operator.controller import Controller, Settings
    from agent_sre_operator.daemons import AdminClient
    from agent_sre_operator.kube import Connection, Kube
    from agent_sre_operator.lease import Elector, default_identity
    from agent_sre_operator.prometheus import PrometheusClient

    settings = Settings(
        namespace=args.namespace,
        configmap=args.configmap,
        base_configmap=args.base_configmap,
        selector=parse_selector(args.selector),
        admin_token=token,
        interval=args.interval,
        prometheus_rules=args.prometheus_rules,
        prometheus_url=args.prometheus_url,
    )
    registry = kopf.OperatorRegistry()
    holder: dict[str, Any] = {}

    def credentials(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo | None:
        """In the pod: its service account; elsewhere: $KUBECONFIG or ~/.kube/config."""
        return kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
            settings=settings
        )

    @kopf.on.login(registry=registry)
    def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo | None:
        return credentials(settings)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False  # conditions, not events, carry the verdicts
        # the namespaces are exact names and the CRDs are installed with the chart: no need
        # to list namespaces and CRDs cluster-wide (and no RBAC for it)
        settings.scanning.disabled = True
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        info = credentials(settings)
        if info is None:
            raise kopf.PermanentError("no credentials: neither a service account nor a kubeconfig")
        kube = Kube(Connection.from_kopf(info), identity)
        controller = Controller(settings=holder["settings"], kube=kube, admin=AdminClient(token))
        if args.prometheus_url:
            controller.prometheus = PrometheusClient(args.prometheus_url)
        if args.leader_lease:
            elector = Elector(kube, args.namespace, args.leader_lease, identity,
                              duration=args.lease_duration)  # fmt: skip
            elector.on_lost.append(controller.lost_lease)
            controller.leader = elector
            holder["elector"] = elector
            holder["election"] = asyncio.create_task(elector.run(), name="agent-sre lease")
        holder["controller"] = controller
        holder["task"] = asyncio.create_task(controller.run(), name="agent-sre reconcile")

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        tasks = [t for t in (holder.get("task"), holder.get("election")) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        elector = holder.get("elector")
        if elector is not None:
            await elector.release()
        controller = holder.get("controller")
        if controller is not None:
            await controller.kube.close()
            await controller.admin.close()
            if controller.prometheus is not None:
                await controller.prometheus.close()

    for kind in KINDS:

        def on_event(event: Any, body: Any, _plural: str = kind.plural, **_: Any) -> None:
            controller = holder.get("controller")
            if controller is not None:
                controller.observe(_plural, event.get("type"), dict(body))

        kopf.on.event(GROUP, VERSION, kind.plural, registry=registry)(on_event)

    holder["settings"] = settings
    identity = default_identity()
    namespaces = args.watch_namespace or [args.namespace]
    log.info(
        "agent-sre operator %s: %s in %s; daemons %s in %s; ConfigMap %s from %s; %s",
        identity,
        ", ".join(k.kind for k in KINDS) + f" ({API_VERSION})",
        "all namespaces" if args.all_namespaces else ", ".join(namespaces),
        args.selector,
        args.namespace,
        args.configmap,
        args.base_configmap,
        f"leader election on Lease {args.namespace}/{args.leader_lease}"
        if args.leader_lease
        else "no leader election (one replica)",
    )
    await kopf.operator(
        registry=registry,
        clusterwide=args.all_namespaces,
        namespaces=() if args.all_namespaces else namespaces,
        # kopf's peering stays off: it pauses every replica of equal priority and does not
        # exclude; the Lease (lease.py) elects the one that writes
        standalone=True,
        liveness_endpoint=args.liveness or None,
    )
