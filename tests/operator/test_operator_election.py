"""Two replicas of the real operator against one kmock API and one real daemon: only the
holder of the Lease writes; when it dies, the other takes over and the resources keep being
applied. Which replica wrote what is read from the API's write log (the User-Agent carries
the replica's identity), as from an API server's audit log."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import pytest

from agent_sre_operator.lease import lease_path
from tests.operator.single import single
from tests.operator.test_operator_kmock import NS, cr_path, slo_names

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.kube import FakeCluster

pytest.importorskip("kmock")
pytest.importorskip("kopf")

pytestmark = pytest.mark.integration

LEASE = "agent-sre-operator"
ELECTION = ("--leader-lease", LEASE, "--lease-duration", "6")


def writers(cluster: FakeCluster, since: int = 0) -> set[str]:
    """The replicas (pod names) that wrote anything but the Lease since write ``since``."""
    return {
        agent.partition("/")[2].rpartition("_")[0]
        for _method, path, agent in cluster.writes[since:]
        if agent.startswith("agent-sre-operator/") and "/leases" not in path
    }


def test_two_replicas_one_writes_and_the_other_takes_over(tmp_path: Path) -> None:
    with single(tmp_path) as stand:
        cluster, daemon = stand.cluster, stand.daemon
        assert daemon is not None
        for name in ("op-a", "op-b"):
            stand.start_operator(name, *ELECTION)

        def holder() -> str:
            lease = cluster.get(lease_path(NS, LEASE)) or {}
            identity = str((lease.get("spec") or {}).get("holderIdentity") or "")
            return identity.rpartition("_")[0]

        def applied(name: str) -> bool:
            return stand.condition(name, "Applied").get("status") == "True"

        first = stand.wait(holder)
        standby = "op-b" if first == "op-a" else "op-a"
        spec = {"target": 0.9, "window": "7d", "sli": {"kind": "task_success"}}
        stand.create_slo("one", spec)
        stand.wait(lambda: "one" in slo_names(daemon))
        stand.wait(lambda: applied("one"))
        # the ConfigMap, the reload's status and the SLO's status: all by the holder, and
        # kopf itself writes nothing (no finalizer, no annotation, no event) in either
        assert writers(cluster) == {first}
        others = {a for _m, _p, a in cluster.writes if not a.startswith("agent-sre-operator/")}
        assert all(a.startswith("Python-urllib") for a in others), others
        assert holder() == first
        assert stand.operators[standby].poll() is None

        # the holder dies without a word (no release): the other takes over
        stand.operators[first].send_signal(signal.SIGKILL)
        stand.operators[first].wait(10)
        mark = len(cluster.writes)
        stand.wait(lambda: holder() == standby)
        assert cluster.get(lease_path(NS, LEASE))["spec"]["leaseTransitions"] == 1
        stand.create_slo("two", spec)
        stand.wait(lambda: "two" in slo_names(daemon))
        stand.wait(lambda: applied("two"))
        assert writers(cluster, mark) == {standby}

        # the first comes back: it stands by, the second keeps writing
        stand.start_operator(first, *ELECTION)
        mark = len(cluster.writes)
        cluster.patch_spec(cr_path("agentslos", "two"), {"target": 0.95})
        stand.wait(lambda: slo_names(daemon)["two"] == 0.95)
        stand.wait(lambda: stand.status("two").get("observedGeneration") == 2)
        assert writers(cluster, mark) == {standby}
        assert holder() == standby

        # a clean stop gives the Lease up: the first takes it without waiting it out
        stand.operators[standby].terminate()
        stand.operators[standby].wait(20)
        lease = cluster.get(lease_path(NS, LEASE))
        assert not lease["spec"].get("holderIdentity") or holder() == first
        stand.wait(lambda: holder() == first)
