"""Label values from clients are bounded."""

from __future__ import annotations


def test_bounded_label_caps_untrusted_values() -> None:
    from agent_sre_daemon.metrics import OVERFLOW_LABEL, BoundedLabel

    label = BoundedLabel(2)
    assert [label(v) for v in ("a", "b", "c", "a", "d")] == [
        "a",
        "b",
        OVERFLOW_LABEL,
        "a",
        OVERFLOW_LABEL,
    ]
