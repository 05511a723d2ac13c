"""One SLO compiled for counting and evaluation: its filters, judge, series and statuses.

The engine (:mod:`agent_sre.slo.engine`) holds one per configured SLO and routes spans to
their observers; everything here concerns a single SLO and its label sets.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from agent_sre.slo.alerts import Status, StatusChange, burn_rate_windows, status_of, worst
from agent_sre.slo.buckets import BucketSeries, window_buckets
from agent_sre.slo.counting import make_observer
from agent_sre.slo.report import (
    InstanceReport,
    SLOReport,
    instance_report,
    report_windows,
)
from agent_sre.slo.sli import make_judge, match_values
from agent_sre.tracing import conventions as c
from agent_sre.units import format_duration

if TYPE_CHECKING:
    from agent_sre.slo.costs import TraceCosts
    from agent_sre.slo.counting import Observer
    from agent_sre.slo.sli import Judge
    from agent_sre.slo.spec import SLOSpec
    from agent_sre.tracing.view import AgentSpan, AttrValue

OVERFLOW = "__overflow__"
"""The label value of every key in the label set that collects label sets beyond the cap."""

# Match keys preferred for the per-span index, most selective first.
_INDEX_PREFERENCE = (
    c.AGENT_ID,
    c.GEN_AI_AGENT_ID,
    c.GEN_AI_AGENT_NAME,
    c.GEN_AI_REQUEST_MODEL,
    c.GEN_AI_TOOL_NAME,
)

LabelKey = tuple[str, ...]
GatheredRow = tuple[LabelKey, tuple[int, int], tuple[tuple[int, int], ...]]
"""One instance as :meth:`CompiledSLO.gather` reads it: key, running counts, window counts."""
Gathered = tuple[list[GatheredRow], bool]
"""Every instance of an SLO, and whether its label sets overflowed."""


def counting_fingerprint(spec: SLOSpec) -> str:
    """Identifies what an SLO counts (its SLI and labels): equal fingerprints mean the saved
    counts of one can be kept for the other, whatever the target, window or alerting."""
    data = {"sli": spec.sli.model_dump(mode="json"), "labels": list(spec.labels)}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _label_text(value: AttrValue | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class CompiledSLO:
    """One SLO compiled for counting: its filters, its judge and its series per label set."""

    __slots__ = (
        "spec", "name", "judge", "checks", "label_keys", "kind_label", "cap", "series",
        "index_key", "hours", "alerts", "limits", "plan", "alert_slots", "windows", "states",
        "fingerprint", "overflow", "report_plan",
    )  # fmt: skip

    def __init__(self, spec: SLOSpec, costs: TraceCosts) -> None:
        index_key = index_key_of(spec)
        self.spec = spec
        self.name = spec.name
        self.index_key = index_key
        self.judge: Judge = make_judge(spec.sli, costs)
        self.checks = tuple(
            (key, match_values(wanted))
            for key, wanted in spec.sli.match.items()
            if key not in (c.AGENT_SPAN_KIND, index_key)
        )
        self.label_keys = spec.labels
        self.kind_label = c.AGENT_SPAN_KIND in spec.labels
        self.cap = spec.max_label_sets
        self.hours = int(spec.window // 3600)
        self.series: dict[LabelKey, BucketSeries] = {}
        if not spec.labels:
            # created up front, so its counters are exported as 0 before the first event
            self.series[()] = BucketSeries(0, self.hours)
        self.states: dict[LabelKey, Status] = {}
        self.fingerprint = counting_fingerprint(spec)
        self.overflow: LabelKey = (OVERFLOW,) * len(spec.labels)
        self.alerts = burn_rate_windows(spec)
        self.limits = tuple(alert.factor * spec.error_budget for alert in self.alerts)
        # The distinct windows evaluation reads (the SLO window first) and, per alert, the
        # positions of its long and short windows in that list.
        plan = [spec.window]
        for alert in self.alerts:
            for seconds in (alert.long_s, alert.short_s):
                if seconds not in plan:
                    plan.append(seconds)
        self.plan = tuple(window_buckets(seconds, self.hours) for seconds in plan)
        self.alert_slots = tuple((plan.index(a.long_s), plan.index(a.short_s)) for a in self.alerts)
        self.windows = report_windows(spec, self.alerts)
        self.report_plan = tuple(window_buckets(seconds, self.hours) for seconds in self.windows)
        """Where each report window is read from (see :meth:`gather`)."""

    def observer(self) -> Observer:
        """The function counting one span into this SLO, specialised for its shape; built
        again whenever the series objects are replaced (restore, carry-over)."""
        series = self._series_for if self.label_keys else self.series[()]
        return make_observer(self.spec.sli, self.judge, self.checks, series)

    def _series_for(self, span: AgentSpan, now: float) -> BucketSeries:
        # hot path: per span and matching labelled SLO
        attrs = span.attrs
        if self.kind_label:
            key = tuple(
                span.kind.value if k == c.AGENT_SPAN_KIND else _label_text(attrs.get(k))
                for k in self.label_keys
            )
        else:
            key = tuple([_label_text(attrs.get(k)) for k in self.label_keys])
        series = self.series.get(key)
        if series is None:
            if len(self.series) >= self.cap and key != self.overflow:
                key = self.overflow
                series = self.series.get(key)
            if series is None:
                series = BucketSeries(int(now // 60), self.hours)
                self.series[key] = series
        return series

    def labels_of(self, key: LabelKey) -> dict[str, str]:
        return dict(zip(self.label_keys, key, strict=True))

    def evaluate(self, minute: int, now: float, changes: list[StatusChange]) -> None:
        budget = self.spec.error_budget
        plan, limits, alerts = self.plan, self.limits, self.alerts
        for key, series in list(self.series.items()):
            series.advance(minute)
            counts = [series.window(fine, n) for fine, n in plan]
            good, total = counts[0]
            remaining = 1.0 - ((total - good) / total / budget if total else 0.0)
            firing = []
            for alert, limit, (long_at, short_at) in zip(
                alerts, limits, self.alert_slots, strict=True
            ):
                long_good, long_total = counts[long_at]
                short_good, short_total = counts[short_at]
                if (
                    long_total
                    and short_total
                    and (long_total - long_good) / long_total > limit
                    and (short_total - short_good) / short_total > limit
                ):
                    firing.append(alert)
            status = status_of(remaining, total, (alert.severity for alert in firing))
            old = self.states.get(key, Status.HEALTHY)
            if status is not old:
                self.states[key] = status
                changes.append(
                    StatusChange(
                        slo=self.name,
                        labels=self.labels_of(key),
                        old=old,
                        new=status,
                        at=now,
                        firing=tuple(alert.name for alert in firing),
                        budget_remaining=remaining,
                    )
                )
            if not total and self.label_keys:
                # a label set silent for a whole SLO window is forgotten (frees the cap),
                # after its return to HEALTHY was signalled
                del self.series[key]
                self.states.pop(key, None)

    def report(self, minute: int, now: float) -> SLOReport:
        return self.report_from(self.gather(minute), now)

    def gather(self, minute: int) -> Gathered:
        """What a report at ``minute`` reads of the counters, as plain numbers: per instance,
        its key, its running ``(good, total)`` and ``(good, total)`` over each report window.
        Cheap (a few bucket reads per instance); :meth:`report_from` does the rest and may run
        off the event loop, since it reads nothing that spans change."""
        plan = self.report_plan
        rows = []
        for key, series in self.series.items():
            series.advance(minute)
            counts = tuple([series.window(fine, n) for fine, n in plan])
            rows.append((key, (series.good, series.total), counts))
        return rows, bool(self.label_keys) and self.overflow in self.series

    def report_from(self, gathered: Gathered, now: float) -> SLOReport:
        """The report of :meth:`gather`'s numbers at ``now``. Pure: reads only the SLO's
        specification and ``gathered``."""
        rows, overflow = gathered
        windows = self.windows
        instances = [
            instance_report(
                self.spec,
                self.alerts,
                windows,
                dict(zip(windows, counts, strict=True)).__getitem__,
                self.labels_of(key),
                lifetime,
                now,
            )
            for key, lifetime, counts in sorted(rows, key=_row_key)
        ]
        labelled = self.label_keys or not instances
        overall = self._overall(rows, now) if labelled else instances[0]
        return SLOReport(
            name=self.name,
            description=self.spec.description,
            kind=self.spec.sli.kind.value,
            target=self.spec.target,
            window=format_duration(self.spec.window),
            label_keys=self.label_keys,
            status=worst(i.status for i in instances),
            overall=overall,
            instances=tuple(instances),
            overflow=overflow,
            at=now,
        )

    def _overall(self, rows: list[GatheredRow], now: float) -> InstanceReport:
        windows = self.windows
        summed = {
            seconds: (sum(r[2][i][0] for r in rows), sum(r[2][i][1] for r in rows))
            for i, seconds in enumerate(windows)
        }
        lifetime = (sum(r[1][0] for r in rows), sum(r[1][1] for r in rows))
        return instance_report(
            self.spec, self.alerts, windows, summed.__getitem__, {}, lifetime, now
        )


def _row_key(row: GatheredRow) -> LabelKey:
    return row[0]


def index_key_of(spec: SLOSpec) -> str | None:
    """The match attribute whose value routes spans to this SLO (None: it sees them all)."""
    keys = [k for k in spec.sli.match if k != c.AGENT_SPAN_KIND]
    for preferred in _INDEX_PREFERENCE:
        if preferred in keys:
            return preferred
    return keys[0] if keys else None
