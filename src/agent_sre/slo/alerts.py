"""Multiwindow burn-rate alerts, SLO status and the signals emitted when a status changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from agent_sre.signals import Severity, Signal, SignalState
from agent_sre.units import format_duration

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from agent_sre.slo.spec import SLOSpec


class Status(str, Enum):
    """The state of one SLO instance, from best to worst."""

    HEALTHY = "HEALTHY"
    WARNING = "WARNING"
    """A ticket alert is firing."""
    CRITICAL = "CRITICAL"
    """A page alert is firing."""
    EXHAUSTED = "EXHAUSTED"
    """No error budget is left over the SLO window."""

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Status.HEALTHY: 0, Status.WARNING: 1, Status.CRITICAL: 2, Status.EXHAUSTED: 3}


def worst(statuses: Iterable[Status]) -> Status:
    """The worst of ``statuses`` (HEALTHY when there is none)."""
    return max(statuses, key=_RANK.__getitem__, default=Status.HEALTHY)


@dataclass(frozen=True, slots=True)
class BurnRateWindow:
    """A multiwindow alert resolved for one SLO: it fires while the error ratio over both
    ``long_s`` and ``short_s`` is above ``factor * error_budget``."""

    severity: str
    long_s: float
    short_s: float
    factor: float

    @property
    def long(self) -> str:
        return format_duration(self.long_s)

    @property
    def short(self) -> str:
        return format_duration(self.short_s)

    @property
    def name(self) -> str:
        """``page-1h``: severity and long window, unique within an SLO."""
        return f"{self.severity}-{self.long}"


def burn_rate_windows(spec: SLOSpec) -> tuple[BurnRateWindow, ...]:
    """The SLO's alerts with their factors scaled to its window (14.4x, 6x, 3x, 1x for 30d)."""
    return tuple(
        BurnRateWindow(
            severity=alert.severity,
            long_s=alert.long,
            short_s=alert.short,
            factor=alert.burn_factor(spec.window),
        )
        for alert in spec.alert_windows
    )


def status_of(remaining: float, total: int, firing_severities: Iterable[str]) -> Status:
    """EXHAUSTED when events have spent the whole budget, else by the worst firing alert."""
    if total and remaining <= 0:
        return Status.EXHAUSTED
    status = Status.HEALTHY
    for severity in firing_severities:
        if severity == "page":
            return Status.CRITICAL
        status = Status.WARNING
    return status


@dataclass(frozen=True)
class StatusChange:
    """Signal: an SLO instance moved from ``old`` to ``new`` at ``at`` (unix seconds)."""

    slo: str
    labels: Mapping[str, str]
    old: Status
    new: Status
    at: float
    firing: tuple[str, ...] = field(default=())
    """Names of the alerts firing at ``at`` (``page-1h``, ``ticket-3d``, ...)."""
    budget_remaining: float = 1.0

    def to_signal(self) -> Signal:
        """The change as a bus signal: firing while the instance is not HEALTHY."""
        healthy = self.new is Status.HEALTHY
        severity = {
            Status.HEALTHY: Severity.INFO,
            Status.WARNING: Severity.WARNING,
        }.get(self.new, Severity.CRITICAL)
        instance = "".join(f" {k}={v}" for k, v in sorted(self.labels.items()))
        return Signal(
            type="slo_status",
            source="slo",
            severity=severity,
            at=self.at,
            message=(
                f"SLO {self.slo}{instance}: {self.old.value} -> {self.new.value} "
                f"(firing: {', '.join(self.firing) or 'none'}, "
                f"budget left {self.budget_remaining * 100:.1f}%)"
            ),
            labels={"slo": self.slo, **self.labels},
            state=SignalState.RESOLVED if healthy else SignalState.FIRING,
            value=self.budget_remaining,
            details=self.to_dict(),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "slo": self.slo,
            "labels": dict(self.labels),
            "old": self.old.value,
            "new": self.new.value,
            "at": self.at,
            "firing": list(self.firing),
            "budget_remaining": self.budget_remaining,
        }
