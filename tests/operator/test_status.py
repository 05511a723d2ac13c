"""The fleet's status from several daemons' answers (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from agent_sre_operator.daemons import daemons_of
from agent_sre_operator.status import (
    BUDGETS,
    CHAOS,
    ROLLOUTS,
    SLOS,
    budget_status,
    experiment_status,
    rollout_status,
    slo_status,
)


def slo_answer(name: str, good: int, total: int, windows: dict[str, tuple[int, int]]) -> Any:
    return {
        SLOS: {
            "slos": [
                {
                    "name": name,
                    "overall": {
                        "budget": {"good": good, "total": total},
                        "windows": [
                            {"window": w, "good": g, "total": t} for w, (g, t) in windows.items()
                        ],
                    },
                },
                {"name": "other", "overall": {"budget": {"good": 0, "total": 1000}}},
            ]
        }
    }


def test_slo_status_sums_the_counts_of_every_daemon_not_their_ratios() -> None:
    answers = [
        slo_answer("s", 990, 1000, {"5m": (9, 10), "1h": (99, 100)}),
        slo_answer("s", 10, 10, {"5m": (1, 1), "1h": (10, 10)}),
        {},  # a daemon that did not answer
    ]
    status = slo_status("s", 0.99, answers)
    assert (status["good"], status["valid"]) == (1000, 1010)
    assert status["attainment"] == pytest.approx(1000 / 1010, abs=1e-6)
    # 10 bad events of 10.1 allowed
    assert status["errorBudgetRemaining"] == pytest.approx(1 - 10 / 10.1, abs=1e-6)
    assert status["burnRates"]["5m"] == pytest.approx((1 - 10 / 11) / 0.01, abs=1e-4)
    assert status["burnRates"]["1h"] == pytest.approx((1 - 109 / 110) / 0.01, abs=1e-4)


def test_slo_status_without_events_says_so() -> None:
    status = slo_status("s", 0.99, [slo_answer("s", 0, 0, {"5m": (0, 0)})])
    assert status["attainment"] is None and status["errorBudgetRemaining"] is None
    assert status["burnRates"] == {"5m": 0.0}
    assert slo_status("missing", 0.99, [slo_answer("s", 1, 1, {})])["valid"] == 0


def test_budget_status_is_the_subject_nearest_its_limit() -> None:
    def answer(*spent: float | None) -> Any:
        subjects = [{"subject": f"a{i}", "spent_usd": s} for i, s in enumerate(spent)]
        return {BUDGETS: {"budgets": [{"name": "b", "subjects": subjects}]}}

    status = budget_status("b", 5.0, [answer(1.0, 2.5), answer(None, 4.0)])
    assert status == {"spentUsd": 4.0, "leftUsd": 1.0, "exhausted": False}
    assert budget_status("b", 5.0, [answer(7.0)]) == {
        "spentUsd": 7.0,
        "leftUsd": 0.0,
        "exhausted": True,
    }


def test_experiment_phase_is_running_when_any_daemon_runs_it() -> None:
    def answer(state: str, run: Any = None) -> Any:
        return {CHAOS: {"experiments": [{"name": "x", "state": state, "run": run}]}}

    run = {"final_state": "completed", "resilience_score": 0.8}
    assert experiment_status("x", [answer("idle"), answer("running")])["phase"] == "running"
    done = experiment_status("x", [answer("idle", run)])
    assert done == {"phase": "idle", "result": "completed", "resilienceScore": 0.8}
    assert experiment_status("x", [])["phase"] is None


def test_rollout_status_is_the_daemon_furthest_along() -> None:
    def answer(step: int, phase: str, verdict: str | None) -> Any:
        rollout = {"name": "r", "step": step, "phase": phase, "weight": [5, 25][step],
                   "analysis": {"verdict": verdict} if verdict else {}}  # fmt: skip
        return {ROLLOUTS: {"rollouts": [rollout]}}

    status = rollout_status("r", [answer(0, "progressing", None), answer(1, "progressing", "pass")])
    assert status == {"phase": "progressing", "step": 2, "weight": 25, "verdict": "pass"}


def test_daemons_are_running_pods_with_the_labels_and_an_admin_port() -> None:
    def pod(name: str, labels: dict[str, str], **status: Any) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"ports": [{"name": "admin", "containerPort": 8791}]}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1", **status},
        }

    selector = {"app": "agent-sre"}
    pods = {
        "items": [
            pod("b", selector, podIP="fd00::1"),
            pod("a", selector),
            pod("other", {"app": "x"}),
            pod("pending", selector, phase="Pending"),
            pod("no-ip", selector, podIP=""),
            {**pod("no-port", selector), "spec": {"containers": [{"ports": []}]}},
        ]
    }
    found = daemons_of(pods, selector)
    assert [(d.pod, d.address) for d in found] == [("a", "10.0.0.1:8791"), ("b", "[fd00::1]:8791")]
