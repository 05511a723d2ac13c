"""Every SLI kind: which span views are valid events and which are good."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from agent_sre.slo.engine import SLOEngine
from agent_sre.tracing.conventions import AgentSpanKind as K
from tests.unit.slo.helpers import DAY0, slo, span

if TYPE_CHECKING:
    from agent_sre.tracing.view import AgentSpan

NOW = DAY0 + 100

# (sli, [(span, verdict)]) with verdict None = not an event, True = good, False = bad.
CASES: dict[str, tuple[dict[str, Any], list[tuple[AgentSpan, bool | None]]]] = {
    "task_success": (
        {"kind": "task_success"},
        [
            (span(K.AGENT_TASK), True),
            (span(K.AGENT_TASK, error=True), False),
            (span(K.AGENT_TASK, error=True, attrs={"agent.task.success": True}), True),
            (span(K.AGENT_TASK, attrs={"agent.task.success": False}), False),
            (span(K.AGENT_TASK, attrs={"agent.task.success": "false"}), False),
            (span(K.AGENT_TASK, error=True, attrs={"agent.task.success": "maybe"}), False),
            (span(K.LLM_INFERENCE), None),
            (span(K.TOOL_CALL, error=True), None),
        ],
    ),
    "tool_call_success": (
        {"kind": "tool_call_success"},
        [
            (span(K.TOOL_CALL), True),
            (span(K.TOOL_CALL, error=True), False),
            (span(K.AGENT_TASK, error=True), None),
        ],
    ),
    "llm_success": (
        {"kind": "llm_success"},
        [
            (span(K.LLM_INFERENCE), True),
            (span(K.LLM_INFERENCE, error=True), False),
            (span(K.TOOL_CALL), None),
        ],
    ),
    "latency": (
        {"kind": "latency", "threshold": "2s"},
        [
            (span(K.LLM_INFERENCE, duration_s=1.5), True),
            (span(K.TOOL_CALL, duration_s=2.0), True),
            (span(K.AGENT_TASK, duration_s=2.001), False),
            (span(K.OTHER, duration_s=3, error=True), False),
        ],
    ),
    "latency of LLM calls only": (
        {"kind": "latency", "threshold": 0.5, "match": {"agent.span.kind": "LLM_INFERENCE"}},
        [
            (span(K.LLM_INFERENCE, duration_s=0.4), True),
            (span(K.LLM_INFERENCE, duration_s=0.6), False),
            (span(K.TOOL_CALL, duration_s=0.6), None),
        ],
    ),
    "cost_per_task": (
        {"kind": "cost_per_task", "threshold": 0.5},
        [
            (span(K.AGENT_TASK, attrs={"agent.task.cost_usd": 0.5}), True),
            (span(K.AGENT_TASK, attrs={"agent.task.cost_usd": 0.51}), False),
            (span(K.AGENT_TASK, attrs={"agent.task.cost_usd": "0.2"}), True),
            (span(K.AGENT_TASK, trace_id=b"\x09" * 16), None),  # no cost known
            (span(K.LLM_INFERENCE, attrs={"agent.task.cost_usd": 9.0}), None),
        ],
    ),
    "policy_compliance": (
        {"kind": "policy_compliance"},
        [
            (span(K.POLICY_CHECK, attrs={"agent.policy.decision": "allow"}), True),
            (span(K.POLICY_CHECK, attrs={"agent.policy.decision": "deny"}), False),
            (span(K.POLICY_CHECK, attrs={"agent.policy.decision": "Violation"}), False),
            (span(K.POLICY_CHECK), True),
            (span(K.AGENT_TASK, attrs={"agent.policy.decision": "deny"}), None),
        ],
    ),
    "delegation_depth": (
        {"kind": "delegation_depth", "threshold": 3},
        [
            (span(K.DELEGATION, attrs={"agent.delegation.depth": 3}), True),
            (span(K.DELEGATION, attrs={"agent.delegation.depth": 4}), False),
            (span(K.DELEGATION), None),
            (span(K.AGENT_TASK, attrs={"agent.delegation.depth": 9}), None),
        ],
    ),
    "hallucination": (
        {"kind": "hallucination"},
        [
            (span(K.LLM_INFERENCE, attrs={"agent.eval.hallucinated": False}), True),
            (span(K.LLM_INFERENCE, attrs={"agent.eval.hallucinated": True}), False),
            (span(K.AGENT_TASK, attrs={"agent.eval.hallucinated": "true"}), False),
            (span(K.LLM_INFERENCE), None),
        ],
    ),
    "hallucination score": (
        {"kind": "hallucination", "attribute": "eval.hallucination_score", "threshold": 0.3},
        [
            (span(K.LLM_INFERENCE, attrs={"eval.hallucination_score": 0.1}), True),
            (span(K.LLM_INFERENCE, attrs={"eval.hallucination_score": 0.7}), False),
            (span(K.LLM_INFERENCE, attrs={"agent.eval.hallucinated": True}), None),
        ],
    ),
    "trust_score": (
        {"kind": "trust_score", "threshold": 0.7},
        [
            (span(K.AGENT_TASK, attrs={"agent.trust_score": 0.7}), True),
            (span(K.DELEGATION, attrs={"agent.trust_score": 0.69}), False),
            (span(K.TOOL_CALL, attrs={"agent.trust_score": 900}), True),
            (span(K.AGENT_TASK), None),
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_sli_kind_counts_valid_and_good_events(case: str) -> None:
    sli, spans = CASES[case]
    for view, verdict in spans:
        engine = SLOEngine([slo("s", sli=sli)])
        engine.observe(view, NOW)
        (series,) = engine.report("s", NOW).instances or [None]
        total = 0 if series is None else series.windows[0].total
        good = 0 if series is None else series.windows[0].good
        expected = {None: (0, 0), True: (1, 1), False: (0, 1)}[verdict]
        assert (good, total) == expected, (case, view.kind, view.attrs, view.is_error)


def test_cost_per_task_sums_the_llm_spans_of_its_trace_seen_before_it() -> None:
    engine = SLOEngine([slo("cost", sli={"kind": "cost_per_task", "threshold": 0.5})])
    cheap, dear = b"\x01" * 16, b"\x02" * 16
    for trace, cost in [(cheap, 0.1), (cheap, 0.2), (dear, 0.4), (dear, 0.3)]:
        engine.observe(
            span(K.LLM_INFERENCE, trace_id=trace, attrs={"agent_sre.cost_usd": cost}), NOW
        )
    engine.observe(span(K.AGENT_TASK, trace_id=cheap), NOW)  # 0.3 <= 0.5: good
    engine.observe(span(K.AGENT_TASK, trace_id=dear), NOW)  # 0.7 > 0.5: bad
    # the task's own attribute wins over the LLM spans
    engine.observe(span(K.AGENT_TASK, trace_id=dear, attrs={"agent.task.cost_usd": 0.05}), NOW)
    window = engine.report("cost", NOW).overall.windows[0]
    assert (window.good, window.total) == (2, 3)


def test_cost_per_task_forgets_the_oldest_trace_beyond_its_bound() -> None:
    engine = SLOEngine([slo("cost", sli={"kind": "cost_per_task", "threshold": 0.5})], max_traces=2)
    traces = [bytes([i]) * 16 for i in range(3)]
    for trace in traces:
        engine.observe(
            span(K.LLM_INFERENCE, trace_id=trace, attrs={"agent_sre.cost_usd": 1.0}), NOW
        )
    for trace in traces:
        engine.observe(span(K.AGENT_TASK, trace_id=trace), NOW)
    window = engine.report("cost", NOW).overall.windows[0]
    assert (window.good, window.total) == (0, 2)  # the first trace's cost was forgotten


def test_match_filters_accept_any_listed_value_and_numbers_as_text() -> None:
    spec = slo(
        "m",
        sli={
            "kind": "llm_success",
            "match": {"gen_ai.request.model": ["gpt-4o", "gpt-4o-mini"], "agent.version": 2},
        },
    )
    engine = SLOEngine([spec])
    views = [
        span(K.LLM_INFERENCE, attrs={"gen_ai.request.model": "gpt-4o", "agent.version": 2}),
        span(K.LLM_INFERENCE, attrs={"gen_ai.request.model": "gpt-4o-mini", "agent.version": "2"}),
        span(K.LLM_INFERENCE, attrs={"gen_ai.request.model": "o3", "agent.version": 2}),
        span(K.LLM_INFERENCE, attrs={"gen_ai.request.model": "gpt-4o", "agent.version": 3}),
        span(K.LLM_INFERENCE, attrs={"gen_ai.request.model": "gpt-4o"}),
    ]
    for view in views:
        engine.observe(view, NOW)
    assert engine.report("m", NOW).overall.windows[0].total == 2


def test_agent_id_match_uses_the_index_and_still_checks_other_filters() -> None:
    engine = SLOEngine(
        [
            slo("a", sli={"kind": "task_success", "match": {"agent.id": "a", "env": "prod"}}),
            slo("b", sli={"kind": "task_success", "match": {"agent.id": ["b", "c"]}}),
            slo("all", sli={"kind": "task_success"}),
        ]
    )
    for agent, env in [("a", "prod"), ("a", "dev"), ("b", "prod"), ("c", "dev"), ("d", "x")]:
        engine.observe(span(attrs={"agent.id": agent, "env": env}), NOW)
    totals = {r.name: r.overall.windows[0].total for r in engine.reports(NOW)}
    assert totals == {"a": 1, "b": 2, "all": 5}


def test_wanted_keys_name_every_attribute_the_slos_read() -> None:
    engine = SLOEngine(
        [
            slo("a", sli={"kind": "cost_per_task", "threshold": 1, "match": {"team": "x"}}),
            slo("b", sli={"kind": "hallucination", "attribute": "eval.h"}, labels=["agent.id"]),
            slo(
                "c",
                sli={"kind": "latency", "threshold": 1, "match": {"agent.span.kind": "TOOL_CALL"}},
            ),
        ]
    )
    assert engine.wanted_keys == {
        "team",
        "agent.task.cost_usd",
        "agent_sre.cost_usd",
        "eval.h",
        "agent.id",
    }


def test_slos_indexed_on_different_attributes_each_see_their_spans() -> None:
    engine = SLOEngine(
        [
            slo("by-agent", sli={"kind": "llm_success", "match": {"agent.id": "a"}}),
            slo("by-model", sli={"kind": "llm_success", "match": {"gen_ai.request.model": "m"}}),
            slo("by-team", sli={"kind": "llm_success", "match": {"team": ["x", "y"]}}),
        ]
    )
    for attrs in [
        {"agent.id": "a", "gen_ai.request.model": "m", "team": "x"},
        {"agent.id": "a", "gen_ai.request.model": "n"},
        {"agent.id": "b", "gen_ai.request.model": "m", "team": "y"},
        {"team": "z"},
    ]:
        engine.observe(span(K.LLM_INFERENCE, attrs=attrs), NOW)
    totals = {r.name: r.overall.budget.total for r in engine.reports(NOW)}
    assert totals == {"by-agent": 2, "by-model": 2, "by-team": 2}
