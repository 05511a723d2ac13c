"""The per-span hot path: closures that count a span into the series of the SLOs it meets.

Everything here runs once per span (the engine's ``observe``, routing by span kind and one
indexed attribute) or once per span and matching SLO (the observers), so each closure is
specialised when the configuration is loaded: no lookup that could be done once, no
allocation, the bucket roll-over only when a minute has passed, and the judges of the
common SLI kinds inlined.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from agent_sre.slo.spec import SLIKind
from agent_sre.tracing import conventions as c

if TYPE_CHECKING:
    from agent_sre.slo.buckets import BucketSeries
    from agent_sre.slo.costs import TraceCosts
    from agent_sre.slo.sli import Judge
    from agent_sre.slo.spec import SLISpec
    from agent_sre.tracing.conventions import AgentSpanKind
    from agent_sre.tracing.view import AgentSpan, AttrValue

Observer = Callable[["AgentSpan", float], None]
"""Counts one span, received at the given time, into one SLO."""
Dispatch = Callable[["AgentSpan", float], None]
"""Counts one span into every SLO it meets."""
SeriesFor = Callable[["AgentSpan", float], "BucketSeries"]
Checks = tuple[tuple[str, frozenset["AttrValue"]], ...]


def make_observer(
    sli: SLISpec, judge: Judge, checks: Checks, series: BucketSeries | SeriesFor
) -> Observer:
    """The observer of one SLO.

    Args:
        sli: the SLI (its kind and threshold pick an inlined judge where there is one).
        judge: the SLI's general judge.
        checks: ``match`` filters not already applied by the dispatch index.
        series: the SLO's only series, or a function finding the series of a span's labels.
    """
    if callable(series) or checks:
        return _general_observer(judge, checks, series)
    only = series
    if sli.kind in (SLIKind.LLM_SUCCESS, SLIKind.TOOL_CALL_SUCCESS):

        def observe_success(span: AgentSpan, now: float) -> None:
            # hot path: per span and matching SLO
            if now >= only.next_at:
                only.roll(now)
            only.total += 1
            if not span.is_error:
                only.good += 1

        return observe_success
    if sli.kind is SLIKind.TASK_SUCCESS:
        success_key = c.AGENT_TASK_SUCCESS

        def observe_task(span: AgentSpan, now: float) -> None:
            # hot path: per span and matching SLO
            flag = span.attrs.get(success_key)
            if flag is None:
                good = not span.is_error
            elif flag is True or flag is False:
                good = flag is True
            else:
                good = judge(span) is True
            if now >= only.next_at:
                only.roll(now)
            only.total += 1
            if good:
                only.good += 1

        return observe_task
    if sli.kind is SLIKind.COST_PER_TASK:
        cost_key, limit = c.AGENT_TASK_COST_USD, sli.threshold or 0.0

        def observe_cost(span: AgentSpan, now: float) -> None:
            # hot path: per span and matching SLO
            cost = span.attrs.get(cost_key)
            if cost.__class__ is float:
                good: bool | None = cost <= limit
            else:
                good = judge(span)
                if good is None:
                    return
            if now >= only.next_at:
                only.roll(now)
            only.total += 1
            if good:
                only.good += 1

        return observe_cost
    if sli.kind is SLIKind.LATENCY:
        limit_ns = (sli.threshold or 0.0) * 1e9

        def observe_latency(span: AgentSpan, now: float) -> None:
            # hot path: per span and matching SLO
            if now >= only.next_at:
                only.roll(now)
            only.total += 1
            if span.end_ns - span.start_ns <= limit_ns:
                only.good += 1

        return observe_latency

    def observe(span: AgentSpan, now: float) -> None:
        # hot path: per span and matching SLO
        verdict = judge(span)
        if verdict is None:
            return
        if now >= only.next_at:
            only.roll(now)
        only.total += 1
        if verdict:
            only.good += 1

    return observe


def _general_observer(judge: Judge, checks: Checks, series: BucketSeries | SeriesFor) -> Observer:
    series_for = series if callable(series) else None
    only = None if callable(series) else series

    def observe_general(span: AgentSpan, now: float) -> None:
        # hot path: per span and matching SLO
        attrs = span.attrs
        for key, accepted in checks:
            if attrs.get(key) not in accepted:
                return
        verdict = judge(span)
        if verdict is None:
            return
        target = series_for(span, now) if series_for is not None else only
        assert target is not None
        if now >= target.next_at:
            target.roll(now)
        target.total += 1
        if verdict:
            target.good += 1

    return observe_general


Route = tuple[
    bool,
    tuple[Observer, ...],
    "str | None",
    "dict[AttrValue, tuple[Observer, ...]] | None",
    tuple[tuple[str, "dict[AttrValue, tuple[Observer, ...]]"], ...],
]
"""What one span kind meets: whether its spans' costs add up per trace (LLM spans, when a
``cost_per_task`` SLO exists), the observers of SLOs that see every span of the kind, the
first index (attribute key and its table value -> observers, or None) and further indexes."""


def make_route(
    collect_costs: bool,
    unindexed: tuple[Observer, ...],
    indexed: tuple[tuple[str, dict[AttrValue, tuple[Observer, ...]]], ...],
) -> Route:
    """The route of one span kind.

    Args:
        collect_costs: whether the span's ``agent_sre.cost_usd`` adds to its trace's cost.
        unindexed: observers of SLOs with no indexable ``match`` filter: they see every span.
        indexed: per attribute key, the observers of the SLOs matching each of its values.
    """
    if not indexed:
        return collect_costs, unindexed, None, None, ()
    (key, table), *more = indexed
    return collect_costs, unindexed, key, table, tuple(more)


def make_observe(routes: dict[AgentSpanKind, Route], costs: TraceCosts) -> Dispatch:
    """The engine's ``observe(span, now)``: one function call per span before the observers
    of the SLOs the span meets (the trace cost accumulation is inlined too)."""
    get = routes.get
    cost_key = c.AGENT_SRE_COST_USD
    cost_table, cost_of, max_traces = costs.table, costs.table.get, costs.max_traces

    def observe(span: AgentSpan, now: float) -> None:
        # hot path: per span
        route = get(span.kind)
        if route is None:
            return
        collect, unindexed, key, table, more = route
        attrs = span.attrs
        if collect:
            cost = attrs.get(cost_key)
            if cost.__class__ is float or cost.__class__ is int:
                # TraceCosts.add, inlined
                trace_id = span.trace_id
                previous = cost_of(trace_id)
                if previous is None:
                    if len(cost_table) >= max_traces:
                        del cost_table[next(iter(cost_table))]
                    cost_table[trace_id] = cost
                else:
                    cost_table[trace_id] = previous + cost
        if unindexed:
            for observer in unindexed:
                observer(span, now)
        if table is not None:
            group = table.get(attrs.get(key))  # type: ignore[arg-type]
            if group is not None:
                for observer in group:
                    observer(span, now)
            if more:
                for other_key, other in more:
                    group = other.get(attrs.get(other_key))  # type: ignore[arg-type]
                    if group is not None:
                        for observer in group:
                            observer(span, now)

    return observe
