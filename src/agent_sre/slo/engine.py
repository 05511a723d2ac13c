"""The SLO engine: spans in, bucketed counts, budgets, burn-rate alerts and status signals out.

Pure and synchronous: every method that depends on time takes ``now`` (unix seconds) from the
caller, nothing here reads a clock, sleeps or does I/O. One engine serves one configuration;
on a reload build a new one and :meth:`SLOEngine.carry_over` the old one's counts into it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent_sre.slo.alerts import Status, StatusChange, worst
from agent_sre.slo.buckets import BucketSeries, HourCopy, SnapshotError
from agent_sre.slo.burndown import BurnDown, burn_down
from agent_sre.slo.compiled import CompiledSLO, LabelKey
from agent_sre.slo.costs import DEFAULT_MAX_TRACES, TraceCosts
from agent_sre.slo.counting import Dispatch, Observer, Route, make_observe, make_route
from agent_sre.slo.sli import attribute_keys, match_values
from agent_sre.slo.spec import SLIKind, SLOSpec, slo_set_problems
from agent_sre.tracing import conventions as c
from agent_sre.tracing.conventions import AgentSpanKind

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from agent_sre.config import Config
    from agent_sre.slo.report import SLOReport
    from agent_sre.tracing.view import AttrValue

SNAPSHOT_FORMAT = "agent-sre/slo-buckets/v1"
_STATUS_VALUES = frozenset(status.value for status in Status)


class SLOEngine:
    """Counts spans into SLOs and evaluates their budgets and alerts.

    Args:
        specs: the validated SLOs (``Config.slos``); names must be unique.
        max_traces: bound of the per-trace cost accumulator behind ``cost_per_task``.

    Raises:
        ValueError: when two SLOs share a name.
    """

    def __init__(self, specs: Sequence[SLOSpec], *, max_traces: int = DEFAULT_MAX_TRACES) -> None:
        problems = slo_set_problems(tuple(specs))
        if problems:
            raise ValueError("; ".join(problems))
        self._costs = TraceCosts(max_traces)
        self._slos: dict[str, CompiledSLO] = {}
        wanted: set[str] = set()
        for spec in specs:
            self._slos[spec.name] = CompiledSLO(spec, self._costs)
            wanted.update(spec.sli.match, spec.labels, attribute_keys(spec.sli))
        self._routes: dict[AgentSpanKind, Route] = {}
        self.observe: Dispatch = make_observe(self._routes, self._costs)
        """``observe(span, now)`` counts ``span`` (received at ``now``) into every SLO it is
        a valid event of. Spans count at the time they are received, so a late span lands in
        the current bucket. The view must have been read with :attr:`wanted_keys`, and for
        ``cost_per_task`` the cost enrichment (``agent_sre.cost_usd``) must run first.
        (An attribute rather than a method: a closure over the routing table saves lookups on
        the hot path. It stays valid for the engine's life: restore and carry-over update the
        table in place, so callers may keep a reference to it.)"""
        self._build_routes()
        self.wanted_keys: frozenset[str] = frozenset(wanted - {c.AGENT_SPAN_KIND})
        """Span attributes the engine reads beyond ``tracing.view.CORE_KEYS``; the daemon
        must decode them (``read_span(span, CORE_KEYS | engine.wanted_keys)``)."""

    def _build_routes(self) -> None:
        """Indexes the SLOs' observers by span kind and by one match attribute each, so a
        span only meets the SLOs it can count for."""
        routes: dict[
            AgentSpanKind, tuple[list[Observer], dict[str, dict[AttrValue, list[Observer]]]]
        ]
        routes = {kind: ([], {}) for kind in AgentSpanKind}
        collect_costs = False
        for slo in self._slos.values():
            spec = slo.spec
            collect_costs = collect_costs or spec.sli.kind is SLIKind.COST_PER_TASK
            observer = slo.observer()
            for kind in spec.sli.span_kinds():
                unindexed, indexed = routes[kind]
                if slo.index_key is None:
                    unindexed.append(observer)
                    continue
                table = indexed.setdefault(slo.index_key, {})
                for value in match_values(spec.sli.match[slo.index_key]):
                    table.setdefault(value, []).append(observer)
        compiled: dict[AgentSpanKind, Route] = {}
        for kind, (unindexed, indexed) in routes.items():
            collect = collect_costs and kind is AgentSpanKind.LLM_INFERENCE
            if unindexed or indexed or collect:
                compiled[kind] = make_route(
                    collect,
                    tuple(unindexed),
                    tuple(
                        (key, {value: tuple(group) for value, group in table.items()})
                        for key, table in indexed.items()
                    ),
                )
        self._routes.clear()
        self._routes.update(compiled)

    @classmethod
    def from_config(cls, config: Config, *, max_traces: int = DEFAULT_MAX_TRACES) -> SLOEngine:
        """The engine of ``config.slos`` (which already holds the SLOs of ``slo_files``)."""
        return cls(config.slos, max_traces=max_traces)

    @property
    def specs(self) -> tuple[SLOSpec, ...]:
        return tuple(slo.spec for slo in self._slos.values())

    def __contains__(self, name: object) -> bool:
        return name in self._slos

    def __len__(self) -> int:
        return len(self._slos)

    def evaluate(self, now: float) -> list[StatusChange]:
        """Evaluates every SLO instance at ``now`` and returns the status changes since the
        previous evaluation (an instance starts HEALTHY)."""
        minute = int(now // 60)
        changes: list[StatusChange] = []
        for slo in self._slos.values():
            slo.evaluate(minute, now, changes)
        return changes

    def status(self, name: str, labels: Mapping[str, str] | None = None) -> Status:
        """The status of an instance as of the last :meth:`evaluate`."""
        slo = self._slos[name]
        key = tuple((labels or {}).get(k, "") for k in slo.label_keys)
        return slo.states.get(key, Status.HEALTHY)

    def report(self, name: str, now: float) -> SLOReport:
        """The report of one SLO at ``now``. Raises KeyError for an unknown name."""
        return self._slos[name].report(int(now // 60), now)

    def burn_down(self, name: str, now: float) -> BurnDown:
        """The error budget's burn-down of one SLO (every label set summed) over its window
        at ``now``. Raises KeyError for an unknown name."""
        slo = self._slos[name]
        minute = int(now // 60)
        series = list(slo.series.values())
        for one in series:
            one.advance(minute)
        return burn_down(series, slo.spec.window, slo.hours, slo.spec.error_budget, now)

    def reports(self, now: float) -> list[SLOReport]:
        """The reports of every SLO, in configuration order."""
        minute = int(now // 60)
        return [slo.report(minute, now) for slo in self._slos.values()]

    def hour_copies(self, now: float) -> list[tuple[SLOSpec, Status, list[HourCopy]]]:
        """Per SLO: its spec, its worst instance status as last evaluated, and a copy of
        every instance's hour ring at ``now`` (see :meth:`BucketSeries.hour_copy`): what the
        fleet summary sums, read off the event loop."""
        minute = int(now // 60)
        out = []
        for slo in self._slos.values():
            copies = []
            for series in slo.series.values():
                series.advance(minute)
                copies.append(series.hour_copy())
            out.append((slo.spec, worst(slo.states.values()), copies))
        return out

    def agent_windows(
        self, now: float, agent_keys: frozenset[str]
    ) -> Iterator[tuple[str, str, int, int]]:
        """``(agent, slo, good, total)`` over the SLO window at ``now``, for every instance
        of an SLO labelled by one of ``agent_keys`` (``agent.id``)."""
        minute = int(now // 60)
        for slo in self._slos.values():
            at = next((i for i, k in enumerate(slo.label_keys) if k in agent_keys), None)
            if at is None:
                continue
            for key, series in slo.series.items():
                if not key[at] or key == slo.overflow:
                    continue
                series.advance(minute)
                good, total = series.window(False, slo.hours)
                yield key[at], slo.name, good, total

    def event_counts(self) -> Iterator[tuple[str, dict[str, str], int, int]]:
        """``(slo, labels, good, bad)`` running totals per instance, for the
        ``agent_sre_slo_events_total{slo,result}`` counter (labels keyed by attribute key;
        :func:`agent_sre.slo.spec.prometheus_label_name` gives the label names)."""
        for slo in self._slos.values():
            for key, series in slo.series.items():
                yield slo.name, slo.labels_of(key), series.good, series.total - series.good

    def snapshot(self) -> dict[str, Any]:
        """The counts of every SLO as JSON-able data, for :meth:`restore` after a restart."""
        return {
            "format": SNAPSHOT_FORMAT,
            "slos": {
                slo.name: {
                    "counts": slo.fingerprint,
                    "labels": list(slo.label_keys),
                    "series": [
                        {
                            "labels": list(key),
                            **series.to_data(),
                            # the status last signalled: an incident it opened resolves when
                            # the SLO recovers after a restart, even before the first tick
                            "status": slo.states.get(key, Status.HEALTHY).value,
                        }
                        for key, series in slo.series.items()
                    ],
                }
                for slo in self._slos.values()
            },
        }

    def restore(self, data: Mapping[str, Any], now: float) -> list[str]:
        """Loads counts saved by :meth:`snapshot` into SLOs that count the same thing.

        SLOs unknown to this engine, or whose SLI or labels changed, are skipped; buckets
        older than the SLO window are dropped; the time since the snapshot counts as no
        events. Existing counts of a restored SLO are replaced.

        Returns:
            The names of the SLOs restored.

        Raises:
            SnapshotError: when the data is not a snapshot; nothing is changed then.
        """
        if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
            raise SnapshotError(f"not an SLO snapshot (format {SNAPSHOT_FORMAT!r})")
        saved = data.get("slos")
        if not isinstance(saved, dict):
            raise SnapshotError("slos: expected a mapping of SLO name to counts")
        minute = int(now // 60)
        loaded: dict[str, tuple[dict[LabelKey, BucketSeries], dict[LabelKey, Status]]] = {}
        for name, entry in saved.items():
            slo = self._slos.get(name)
            if slo is None or not isinstance(entry, dict):
                continue
            if entry.get("counts") != slo.fingerprint:
                continue
            series_list = entry.get("series")
            if not isinstance(series_list, list):
                raise SnapshotError(f"{name}: series must be a list")
            restored: dict[LabelKey, BucketSeries] = {}
            states: dict[LabelKey, Status] = {}
            for item in series_list:
                key = _label_key(item, len(slo.label_keys), name)
                try:
                    series = BucketSeries.from_data(item, minute, slo.hours)
                except SnapshotError as exc:
                    raise SnapshotError(f"{name}: {exc}") from None
                if series is not None:
                    restored[key] = series
                    status = item.get("status")  # absent in snapshots of older releases
                    if status in _STATUS_VALUES:
                        states[key] = Status(status)
            loaded[name] = (restored, states)
        for name, (restored, states) in loaded.items():
            self._adopt(self._slos[name], restored, states, minute)
        self._build_routes()
        return list(loaded)

    def carry_over(self, old: SLOEngine, now: float) -> list[str]:
        """Takes the counts and statuses of ``old`` (the engine of the previous configuration)
        for every SLO with the same name that counts the same thing (same SLI and labels); a
        changed target, window or alerting keeps the counts. ``old`` must not be used after.

        Returns:
            The names of the SLOs carried over.
        """
        minute = int(now // 60)
        carried = []
        for name, slo in self._slos.items():
            previous = old._slos.get(name)
            if previous is None or previous.fingerprint != slo.fingerprint:
                continue
            if previous.hours == slo.hours:
                series = dict(previous.series)
            else:
                rebuilt = (
                    (key, BucketSeries.from_data(s.to_data(), minute, slo.hours))
                    for key, s in previous.series.items()
                )
                series = {key: s for key, s in rebuilt if s is not None}
            self._adopt(slo, series, previous.states, minute)
            carried.append(name)
        self._costs.adopt(old._costs)
        self._build_routes()
        return carried

    @staticmethod
    def _adopt(
        slo: CompiledSLO,
        series: dict[LabelKey, BucketSeries],
        states: Mapping[LabelKey, Status],
        minute: int,
    ) -> None:
        if not slo.label_keys and () not in series:
            series[()] = BucketSeries(minute, slo.hours)
        slo.series = series
        slo.states = {key: status for key, status in states.items() if key in series}


def _label_key(item: Any, size: int, name: str) -> LabelKey:
    labels = item.get("labels") if isinstance(item, dict) else None
    if (
        not isinstance(labels, list)
        or len(labels) != size
        or not all(isinstance(v, str) for v in labels)
    ):
        raise SnapshotError(f"{name}: each series needs labels: a list of {size} strings")
    return tuple(labels)
