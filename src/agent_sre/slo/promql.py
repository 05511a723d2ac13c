"""Reading the SLI queries of other tools' SLOs as span SLIs, where they describe agent calls.

An SLI written for Sloth, Pyrra or OpenSLO is a Prometheus query. The only ones this daemon
can count from spans are over the OpenTelemetry GenAI client metric
``gen_ai_client_operation_duration_seconds`` (one observation per LLM call, the calls the
daemon sees as ``LLM_INFERENCE`` spans), filtered by labels that are span attributes it
knows:

- errors over all calls (``..._count{error_type=~".+"}`` or ``{error_type!=""}`` over
  ``..._count``) is ``llm_success``;
- calls within a bucket over all calls (``..._bucket{le="2"}`` over ``..._count``) is
  ``latency`` with that threshold, over LLM spans.

A selector may be wrapped as Sloth writes it (``sum(rate(...[{{.window}}]))``). Anything
else — another metric, a label that is no span attribute, a regex matcher other than
alternatives — is reported, never approximated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

GENAI_DURATION = "gen_ai_client_operation_duration_seconds"
LABEL_ATTRIBUTES = {
    "gen_ai_request_model": "gen_ai.request.model",
    "gen_ai_response_model": "gen_ai.response.model",
    "gen_ai_provider_name": "gen_ai.provider.name",
    "gen_ai_system": "gen_ai.system",
    "gen_ai_operation_name": "gen_ai.operation.name",
    "gen_ai_agent_name": "gen_ai.agent.name",
    "agent_id": "agent.id",
    "agent_version": "agent.version",
}
"""Prometheus labels of GenAI metrics (attributes with dots as underscores) -> span attributes."""
_ERROR_MATCHERS = {("error_type", "=~", ".+"), ("error_type", "!=", "")}
_SELECTOR = re.compile(r"^\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*(?:\{(.*)\})?\s*$", re.S)
_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_WRAPPED = re.compile(
    r"^\s*sum\s*\(\s*(?:rate|increase)\s*\(\s*(.*?)\s*\[[^\]]*\]\s*\)\s*\)\s*$", re.S
)
_ALTERNATIVES = re.compile(r"^[A-Za-z0-9_.:/-]+(\|[A-Za-z0-9_.:/-]+)*$")

Matcher = tuple[str, str, str]


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: frozenset[Matcher]


def parse_selector(query: str) -> Selector | None:
    """``metric{label="v",...}``, bare or as ``sum(rate(...[window]))``; None otherwise."""
    wrapped = _WRAPPED.match(query)
    text = wrapped.group(1) if wrapped else query
    found = _SELECTOR.match(text)
    if found is None:
        return None
    body = found.group(2) or ""
    matchers: set[Matcher] = set()
    position = 0
    while position < len(body.strip()):
        matcher = _MATCHER.match(body, position)
        if matcher is None:
            return None
        matchers.add((matcher.group(1), matcher.group(2), matcher.group(3)))
        position = matcher.end()
    return Selector(found.group(1), frozenset(matchers))


def map_ratio(
    total: str, bad: str | None = None, good: str | None = None
) -> tuple[dict[str, Any] | None, list[str]]:
    """The span SLI (as written under ``sli:``) of a ratio of queries, or why there is none."""
    total_sel = parse_selector(total)
    part = bad if bad is not None else good
    part_sel = parse_selector(part) if part is not None else None
    if total_sel is None or part_sel is None:
        return None, [f"the queries ({part}; {total}) are not plain selectors of one metric"]
    if total_sel.metric != f"{GENAI_DURATION}_count":
        return None, [f"metric {total_sel.metric} is not one agent-sre counts from spans"]
    extra = part_sel.matchers - total_sel.matchers
    if total_sel.matchers - part_sel.matchers:
        return None, ["the two queries filter different calls"]
    if bad is not None:
        if (
            part_sel.metric != f"{GENAI_DURATION}_count"
            or len(extra) != 1
            or not (extra <= _ERROR_MATCHERS)
        ):
            return None, ['the error query is not the total with error_type=~".+"']
        sli: dict[str, Any] = {"kind": "llm_success"}
    else:
        le = [value for label, op, value in extra if label == "le" and op == "="]
        if part_sel.metric != f"{GENAI_DURATION}_bucket" or len(extra) != 1 or not le:
            return None, ['the good query is not the total\'s _bucket{le="..."}']
        try:
            threshold = float(le[0])
        except ValueError:
            return None, [f"le={le[0]!r} is not a number of seconds"]
        sli = {"kind": "latency", "threshold": threshold}
    match, problems = _match(total_sel.matchers)
    if problems:
        return None, problems
    if sli["kind"] == "latency":
        match = {"agent.span.kind": "LLM_INFERENCE", **match}
    if match:
        sli["match"] = match
    return sli, []


def _match(matchers: frozenset[Matcher]) -> tuple[dict[str, Any], list[str]]:
    match: dict[str, Any] = {}
    problems = []
    for label, op, value in sorted(matchers):
        attribute = LABEL_ATTRIBUTES.get(label)
        if attribute is None:
            problems.append(f"label {label} is not a span attribute agent-sre knows")
        elif op == "=":
            match[attribute] = value
        elif op == "=~" and _ALTERNATIVES.match(value):
            options = value.split("|")
            match[attribute] = options if len(options) > 1 else options[0]
        else:
            problems.append(f"matcher {label}{op}{value!r} is not mapped (= and a|b are)")
    return match, problems
