"""Error-budget arithmetic over counts: error ratio, burn rate, remaining budget, forecast."""

from __future__ import annotations


def error_ratio(good: int, total: int) -> float:
    """The share of bad events; 0 when there were no events."""
    return (total - good) / total if total else 0.0


def burn_rate(good: int, total: int, error_budget: float) -> float:
    """How fast the budget burns: 1.0 spends exactly the budget over the SLO window."""
    return error_ratio(good, total) / error_budget


def budget_remaining(good: int, total: int, error_budget: float) -> float:
    """The unspent share of the error budget over the SLO window: 1 with no bad event,
    0 when the bad events reach ``error_budget * total``, negative beyond."""
    return 1.0 - burn_rate(good, total, error_budget)


def seconds_to_exhaustion(remaining: float, burn: float, window_s: float) -> float | None:
    """How long the remaining budget lasts at a steady ``burn``: ``remaining * window / burn``.

    Linear: it assumes today's traffic and error ratio go on and ignores old bad events
    leaving the window. 0 when nothing is left; None when nothing burns.
    """
    if remaining <= 0:
        return 0.0
    if burn <= 0:
        return None
    return remaining * window_s / burn
