"""A change that a reload cannot apply: the resources say RestartNeeded, naming the setting and
the pods, on every pass until the pods restart (the real operator, kmock, a real daemon)."""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING

import pytest
import yaml

from tests.operator.single import single
from tests.operator.test_operator_kmock import NS, slo_names

if TYPE_CHECKING:
    from pathlib import Path

pytest.importorskip("kmock")
pytest.importorskip("kopf")

pytestmark = pytest.mark.integration

SPEC = {"target": 0.9, "window": "7d", "sli": {"kind": "task_success"}}


def test_a_change_needing_a_restart_is_said_until_the_pod_restarts(tmp_path: Path) -> None:
    with single(tmp_path) as stand:
        stand.start_operator("op")
        stand.create_slo("s", SPEC)
        stand.wait(lambda: stand.condition("s", "Applied").get("status") == "True")
        daemon = stand.daemon
        assert daemon is not None and daemon.proc is not None
        pid = daemon.proc.pid

        # the chart's base gains a setting only a restart applies
        path = f"/api/v1/namespaces/{NS}/configmaps/agent-sre-base"
        base = yaml.safe_load(stand.cluster.get(path)["data"]["agent-sre.yaml"])
        base.setdefault("node", {})["max_connections_per_listener"] = 256
        status, _ = stand.cluster.request(
            "PATCH", path, {"data": {"agent-sre.yaml": yaml.safe_dump(base)}}
        )
        assert status == 200
        applied = stand.wait(
            lambda: (
                stand.condition("s", "Applied").get("reason") == "RestartNeeded"
                and stand.condition("s", "Applied")
            )
        )
        assert "node.max_connections_per_listener" in applied["message"]
        assert "take effect on restart" in applied["message"]
        assert "agent-sre-0" in applied["message"]
        assert daemon.alive() and daemon.proc.pid == pid  # nothing rolled by the operator
        with urllib.request.urlopen(daemon.url("admin", "/v1/status"), timeout=5) as response:
            config = json.load(response)["config"]
        assert config["restart_needed"] == ["node.max_connections_per_listener"]

        # a later change that a reload does apply: still said, the pod still runs the old cap
        stand.create_slo("t", SPEC)
        stand.wait(lambda: "t" in slo_names(daemon))
        settled = ("RestartNeeded", "Reloaded")
        later = stand.wait(
            lambda: (
                stand.condition("t", "Applied").get("reason") in settled
                and stand.condition("t", "Applied")["reason"]
            )
        )
        assert later == "RestartNeeded"

        # the pod restarts: the condition clears
        daemon.stop(timeout=15)
        restarted = stand.start_daemon()
        assert restarted.proc is not None and restarted.proc.pid != pid
        stand.wait(lambda: stand.condition("s", "Applied").get("status") == "True")
        stand.wait(lambda: stand.condition("t", "Applied").get("status") == "True")
        assert stand.status("t")["applied"] == "1/1"
