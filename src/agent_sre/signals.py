"""The one shape every engine uses to say something an operator should hear about.

SLO status changes, budget thresholds and refusals, cost anomalies, store errors, export
failures and drops, and (later) chaos aborts and rollout decisions are all a :class:`Signal`.
Engines build them from plain values; the daemon's bus carries them to subscribers
(incidents, notifications, the admin API).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping


class Severity(str, Enum):
    """How loud a signal is, from quietest to loudest."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class SignalState(str, Enum):
    """A signal opens (``firing``) and may later close (``resolved``); one-off events are
    ``firing`` and never resolve."""

    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Signal:
    """Something that happened, in one shape for every engine.

    Attributes:
        type: what happened, e.g. ``slo_status``, ``budget_exhausted``, ``export_failed``.
        source: the engine that saw it, e.g. ``slo``, ``budgets``, ``exporter``.
        severity: how loud it is.
        at: when it happened (unix seconds), from the clock of whoever saw it.
        message: one English sentence for people.
        labels: what it is about (``slo``, ``agent_id``, ``budget``, ...); the identity of
            the thing a ``resolved`` signal closes is its type, source and labels.
        state: ``firing`` or ``resolved``.
        value: a number that measures it (a burn rate, dollars spent, items dropped).
        details: what else the engine knows (JSON-able), e.g. the alerts firing.
    """

    type: str
    source: str
    severity: Severity
    at: float
    message: str
    labels: dict[str, str] = field(default_factory=dict)
    state: SignalState = SignalState.FIRING
    value: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        """The identity of what the signal is about (for dedup and resolution)."""
        return self.type, self.source, tuple(sorted(self.labels.items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "source": self.source,
            "severity": self.severity.value,
            "state": self.state.value,
            "at": self.at,
            "message": self.message,
            "labels": dict(self.labels),
            "value": self.value,
            "details": dict(self.details),
        }
