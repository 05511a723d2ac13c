"""What an SLO looks like from outside: per window, budget, alerts, forecast and status.

Reports are plain frozen dataclasses built from counts; ``to_dict()`` gives JSON-able data for
the admin API and ``agent-sre slo show --json``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from agent_sre.slo.alerts import BurnRateWindow, Status, status_of
from agent_sre.slo.budget import budget_remaining, burn_rate, error_ratio, seconds_to_exhaustion
from agent_sre.units import format_duration

if TYPE_CHECKING:
    from agent_sre.slo.spec import SLOSpec

CURRENT_WINDOW = 300.0
"""The window of the "current" burn rate (as Sloth's ``slo:current_burn_rate:ratio``)."""
FORECAST_WINDOW = 3600.0
"""The window whose burn rate the exhaustion forecast extrapolates (steadier than 5m)."""

WindowCounts = Callable[[float], "tuple[int, int]"]
"""``(good, total)`` over the last ``seconds``."""


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class _Jsonable:
    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-able data (enums as their values, tuples as lists)."""
        data = _jsonable(self)
        assert isinstance(data, dict)
        return data


@dataclass(frozen=True)
class WindowReport(_Jsonable):
    window: str
    seconds: float
    good: int
    total: int
    sli: float | None
    """good / total; None when the window had no event."""
    error_ratio: float
    burn_rate: float


@dataclass(frozen=True)
class AlertReport(_Jsonable):
    name: str
    severity: str
    long_window: str
    short_window: str
    factor: float
    long_burn_rate: float
    short_burn_rate: float
    firing: bool


@dataclass(frozen=True)
class BudgetReport(_Jsonable):
    window: str
    good: int
    total: int
    bad: int
    """Events that consumed budget over the window."""
    allowed_bad: float
    """The budget in events: ``(1 - target) * total``."""
    remaining_ratio: float
    """1 - bad / allowed_bad; 0 or below is EXHAUSTED."""
    period_burn_rate: float
    current_burn_rate: float
    """Burn rate over the last 5m."""
    forecast_burn_rate: float
    """Burn rate over the last 1h, which the forecast extrapolates."""
    exhaustion_in_s: float | None
    """Seconds until the budget is spent at ``forecast_burn_rate``; None: not burning."""
    exhaustion_at: float | None


@dataclass(frozen=True)
class InstanceReport(_Jsonable):
    """One label set of an SLO (the only one, with no labels, when the SLO declares none)."""

    labels: Mapping[str, str]
    status: Status
    windows: tuple[WindowReport, ...]
    budget: BudgetReport
    alerts: tuple[AlertReport, ...]
    events_good: int
    """Good events counted since the series started (the exported counter)."""
    events_bad: int

    @property
    def firing(self) -> tuple[str, ...]:
        return tuple(alert.name for alert in self.alerts if alert.firing)


@dataclass(frozen=True)
class SLOReport(_Jsonable):
    name: str
    description: str
    kind: str
    target: float
    window: str
    label_keys: tuple[str, ...]
    status: Status
    """The worst status among the instances."""
    overall: InstanceReport
    """All label sets summed (the instance itself when the SLO declares no labels)."""
    instances: tuple[InstanceReport, ...]
    overflow: bool
    """More label sets were seen than ``max_label_sets``; the rest count as ``__overflow__``."""
    at: float


def report_windows(spec: SLOSpec, alerts: tuple[BurnRateWindow, ...]) -> tuple[float, ...]:
    """The windows an SLO reports, shortest first: 5m, 1h, every alert window, the SLO window."""
    seconds = {CURRENT_WINDOW, FORECAST_WINDOW, spec.window}
    for alert in alerts:
        seconds.update((alert.long_s, alert.short_s))
    return tuple(sorted(seconds))


def instance_report(
    spec: SLOSpec,
    alerts: tuple[BurnRateWindow, ...],
    windows: tuple[float, ...],
    counts: WindowCounts,
    labels: Mapping[str, str],
    lifetime: tuple[int, int],
    now: float,
) -> InstanceReport:
    """Builds the report of one instance from its window counts at ``now``."""
    budget = spec.error_budget
    by_window: dict[float, WindowReport] = {}
    for seconds in windows:
        good, total = counts(seconds)
        by_window[seconds] = WindowReport(
            window=format_duration(seconds),
            seconds=seconds,
            good=good,
            total=total,
            sli=good / total if total else None,
            error_ratio=error_ratio(good, total),
            burn_rate=burn_rate(good, total, budget),
        )
    alert_reports = tuple(
        AlertReport(
            name=alert.name,
            severity=alert.severity,
            long_window=alert.long,
            short_window=alert.short,
            factor=alert.factor,
            long_burn_rate=by_window[alert.long_s].burn_rate,
            short_burn_rate=by_window[alert.short_s].burn_rate,
            firing=_fires(alert, by_window, budget),
        )
        for alert in alerts
    )
    period = by_window[spec.window]
    remaining = budget_remaining(period.good, period.total, budget)
    forecast_burn = by_window[FORECAST_WINDOW].burn_rate
    exhaustion = seconds_to_exhaustion(remaining, forecast_burn, spec.window)
    if not period.total:
        exhaustion = None
    budget_report = BudgetReport(
        window=format_duration(spec.window),
        good=period.good,
        total=period.total,
        bad=period.total - period.good,
        allowed_bad=budget * period.total,
        remaining_ratio=remaining,
        period_burn_rate=period.burn_rate,
        current_burn_rate=by_window[CURRENT_WINDOW].burn_rate,
        forecast_burn_rate=forecast_burn,
        exhaustion_in_s=exhaustion,
        exhaustion_at=None if exhaustion is None else now + exhaustion,
    )
    firing = (alert.severity for alert in alert_reports if alert.firing)
    return InstanceReport(
        labels=dict(labels),
        status=status_of(remaining, period.total, firing),
        windows=tuple(by_window[s] for s in windows),
        budget=budget_report,
        alerts=alert_reports,
        events_good=lifetime[0],
        events_bad=lifetime[1] - lifetime[0],
    )


def _fires(alert: BurnRateWindow, by_window: dict[float, WindowReport], budget: float) -> bool:
    limit = alert.factor * budget
    return (
        by_window[alert.long_s].error_ratio > limit and by_window[alert.short_s].error_ratio > limit
    )
