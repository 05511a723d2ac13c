"""Signals are redacted as they are published: message, labels and details, the details'
shape kept (a rollout's analysis, with numbers and lists, stays what it was)."""

from __future__ import annotations

from agent_sre.replay.redaction import Redactor
from agent_sre.signals import Severity, Signal
from agent_sre_daemon.signals import redacted_signal

KEY = "sk-proj-Zq81xWmB4tKd9LrP2vYc"


def test_a_signal_loses_its_credentials_and_keeps_its_shape() -> None:
    details = {
        "analysis": {"checks": [{"metric": "cost", "passed": False, "samples": [30, 31]}]},
        "reason": f"model {KEY} has no price",
        "api_key": "opaque",
        "at": 1700000601.0,
    }
    signal = Signal(
        type="budget_refused",
        source="budgets",
        severity=Severity.WARNING,
        at=1.0,
        message=f"model {KEY!r} has no price",
        labels={"agent_id": "planner", "model": KEY},
        details=details,
    )
    out = redacted_signal(signal, Redactor())
    assert KEY not in repr(out) and "opaque" not in repr(out)
    assert out.message == "model '[REDACTED]' has no price"
    assert out.labels == {"agent_id": "planner", "model": "[REDACTED]"}
    assert out.details["analysis"] == details["analysis"] and out.details["at"] == 1700000601.0
    clean = Signal(type="t", source="s", severity=Severity.INFO, at=1.0, message="all well")
    assert redacted_signal(clean, Redactor()) is clean
