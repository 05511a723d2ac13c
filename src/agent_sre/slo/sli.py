"""SLI kinds as judges: a span in, ``None`` (not an event), ``True`` (good) or ``False`` (bad).

Judges run on the hot path, once per span and matching SLO, so each is a small closure over
its threshold with no allocation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_sre.slo.spec import MatchValue, SLIKind, SLISpec
from agent_sre.tracing import conventions as c

if TYPE_CHECKING:
    from collections.abc import Callable

    from agent_sre.slo.costs import TraceCosts
    from agent_sre.tracing.view import AgentSpan, AttrValue

    Judge = Callable[[AgentSpan], "bool | None"]

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
POLICY_VIOLATIONS = frozenset({"deny", "denied", "violation", "violated", "block", "blocked"})
"""``agent.policy.decision`` values (case-insensitive) that make a policy check bad."""


def as_bool(value: AttrValue | None) -> bool | None:
    """Reads a flag written as a bool, a number or ``"true"``/``"false"``; else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


def as_number(value: AttrValue | None) -> float | None:
    """Reads a number written as an int, a float or a numeric string; else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except ValueError:
        return None


def make_judge(sli: SLISpec, costs: TraceCosts) -> Judge:
    """Builds the judge of one SLI. ``costs`` feeds ``cost_per_task`` from LLM spans."""
    kind = sli.kind
    threshold = sli.threshold if sli.threshold is not None else 0.0
    if kind is SLIKind.TASK_SUCCESS:
        return _task_success
    if kind in (SLIKind.TOOL_CALL_SUCCESS, SLIKind.LLM_SUCCESS):
        return _no_error
    if kind is SLIKind.LATENCY:
        limit_ns = threshold * 1e9

        def latency(span: AgentSpan) -> bool:
            return span.end_ns - span.start_ns <= limit_ns

        return latency
    if kind is SLIKind.COST_PER_TASK:
        cost_of = costs.cost_of

        def cost_per_task(span: AgentSpan) -> bool | None:
            value = span.attrs.get(c.AGENT_TASK_COST_USD)
            cost = value if value.__class__ is float else as_number(value)
            if cost is None:
                cost = cost_of(span.trace_id)
            return None if cost is None else cost <= threshold

        return cost_per_task
    if kind is SLIKind.POLICY_COMPLIANCE:
        return _policy_compliance
    if kind is SLIKind.DELEGATION_DEPTH:
        return _at_most(c.AGENT_DELEGATION_DEPTH, threshold)
    if kind is SLIKind.TRUST_SCORE:
        return _at_least(c.AGENT_TRUST_SCORE, threshold)
    assert kind is SLIKind.HALLUCINATION
    return _hallucination(sli.evaluation_attribute, sli.threshold)


def _task_success(span: AgentSpan) -> bool:
    value = span.attrs.get(c.AGENT_TASK_SUCCESS)
    if value is True:
        return True
    if value is False:
        return False
    success = None if value is None else as_bool(value)
    return (not span.is_error) if success is None else success


def _no_error(span: AgentSpan) -> bool:
    return not span.is_error


def _policy_compliance(span: AgentSpan) -> bool:
    decision = span.attrs.get(c.AGENT_POLICY_DECISION)
    return not (isinstance(decision, str) and decision.strip().lower() in POLICY_VIOLATIONS)


def _at_most(key: str, limit: float) -> Judge:
    def judge(span: AgentSpan) -> bool | None:
        value = as_number(span.attrs.get(key))
        return None if value is None else value <= limit

    return judge


def _at_least(key: str, limit: float) -> Judge:
    def judge(span: AgentSpan) -> bool | None:
        value = as_number(span.attrs.get(key))
        return None if value is None else value >= limit

    return judge


def _hallucination(key: str, max_score: float | None) -> Judge:
    def judge(span: AgentSpan) -> bool | None:
        value = span.attrs.get(key)
        if value is None:
            return None
        if max_score is not None and not isinstance(value, bool):
            score = as_number(value)
            if score is not None:
                return score <= max_score
        flagged = as_bool(value)
        return None if flagged is None else not flagged

    return judge


def attribute_keys(sli: SLISpec) -> frozenset[str]:
    """The span attributes the judge of ``sli`` reads (beyond the span's kind and status)."""
    keys = {
        SLIKind.TASK_SUCCESS: {c.AGENT_TASK_SUCCESS},
        SLIKind.COST_PER_TASK: {c.AGENT_TASK_COST_USD, c.AGENT_SRE_COST_USD},
        SLIKind.POLICY_COMPLIANCE: {c.AGENT_POLICY_DECISION},
        SLIKind.DELEGATION_DEPTH: {c.AGENT_DELEGATION_DEPTH},
        SLIKind.TRUST_SCORE: {c.AGENT_TRUST_SCORE},
        SLIKind.HALLUCINATION: {sli.evaluation_attribute},
    }.get(sli.kind, set())
    return frozenset(keys)


def match_values(wanted: MatchValue | list[MatchValue]) -> frozenset[AttrValue]:
    """The attribute values a ``match`` entry accepts.

    Each value is accepted as written and as text, so ``agent.version: 2`` matches both the
    int ``2`` and the string ``"2"``; booleans also match ``"true"``/``"false"``.
    """
    accepted: set[AttrValue] = set()
    for value in wanted if isinstance(wanted, list) else [wanted]:
        accepted.add(value)
        if isinstance(value, bool):
            accepted.add("true" if value else "false")
        else:
            accepted.add(str(value))
    return frozenset(accepted)
