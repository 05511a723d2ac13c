"""SLOs in and out of OpenSLO v1, Sloth and Pyrra: exact round trips over generated SLOs,
the Sloth export generating the daemon's own recording rules, and real example documents of
those projects refused with the reason named."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_sre.slo.interchange import (
    ANNOTATION,
    FORMATS,
    export_documents,
    import_documents,
    sloth_queries,
    written,
)
from agent_sre.slo.rules import generate_prometheus_rules
from agent_sre.slo.spec import SLOSpec

DATA = Path(__file__).parents[2] / "data" / "slo_formats"

SLIS = [
    {"kind": "task_success"},
    {"kind": "llm_success", "match": {"gen_ai.request.model": ["gpt-4o", "gpt-4o-mini"]}},
    {"kind": "latency", "threshold": 2.5, "match": {"agent.id": "support"}},
    {"kind": "cost_per_task", "threshold": 0.01},
    {"kind": "tool_call_success", "match": {"gen_ai.tool.name": "search"}},
    {"kind": "hallucination"},
]
ALERTS = [
    None,
    [],
    [{"severity": "page", "long": "1h30m", "short": "5m", "factor": 10}],
    [{"severity": "ticket", "long": "1d", "short": "2h", "budget_percent": 10}],
]


@st.composite
def slo_specs(draw: st.DrawFn) -> SLOSpec:
    name = draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True))
    target = draw(st.sampled_from([0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 0.123456789]))
    window = draw(st.sampled_from(["1d", "28d", "30d", "2w", "36h", "366d", "7d"]))
    alerting = draw(st.sampled_from(ALERTS))
    data: dict[str, Any] = {
        "name": name,
        "target": target,
        "window": window,
        "sli": draw(st.sampled_from(SLIS)),
        "description": draw(st.sampled_from(["", "Support tasks succeed", "é ünïcode: 'q'"])),
        "labels": draw(st.sampled_from([[], ["agent.id"], ["agent.id", "agent.version"]])),
        "max_label_sets": draw(st.sampled_from([100, 7])),
    }
    if alerting is not None or window in ("1d", "36h", "2w", "7d"):
        data["alerting"] = alerting if alerting is not None else []
    if window in ("1d", "36h") and data["alerting"] and data["alerting"][0]["long"] == "1d":
        data["alerting"] = []
    return SLOSpec.model_validate(data)


def unique(specs: list[SLOSpec]) -> list[SLOSpec]:
    seen: dict[str, SLOSpec] = {}
    for spec in specs:
        seen.setdefault(spec.name, spec)
    return list(seen.values())


def through_yaml(docs: list[dict[str, Any]]) -> list[Any]:
    return list(yaml.safe_load_all(yaml.safe_dump_all(docs, sort_keys=False)))


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=60, deadline=None)
@given(specs=st.lists(slo_specs(), min_size=1, max_size=4).map(unique))
def test_export_then_import_gives_back_the_same_slos(fmt: str, specs: list[SLOSpec]) -> None:
    back = import_documents(through_yaml(export_documents(specs, fmt)))
    assert back.problems == []
    assert back.slos == specs


def test_the_slos_section_written_reads_back_the_same() -> None:
    spec = SLOSpec.model_validate(
        {"name": "s", "target": 0.99, "window": "2w", "sli": SLIS[2], "alerting": ALERTS[2]}
    )
    text = yaml.safe_dump({"slos": [written(spec)]})
    assert "1h30m" in text and "14d" in text
    assert SLOSpec.model_validate(yaml.safe_load(text)["slos"][0]) == spec


def normalised(expr: str) -> str:
    return re.sub(r"\s+", "", expr)


def test_the_sloth_export_generates_the_daemons_recording_rules() -> None:
    """Sloth records each SLI window as ``(error_query)/(total_query)``, {{.window}} filled in;
    that is the expression `agent-sre rules prometheus` records under the same name."""
    spec = SLOSpec.model_validate(
        {"name": "tasks", "target": 0.99, "sli": SLIS[0], "labels": ["agent.id"]}
    )
    (doc,) = export_documents([spec], "sloth")
    events = doc["slos"][0]["sli"]["events"]
    assert (events["error_query"], events["total_query"]) == sloth_queries("tasks", ["agent.id"])
    ours = generate_prometheus_rules([spec])["groups"][0]["rules"]
    assert ours
    for rule in ours:
        window = rule["labels"]["window"]
        error = events["error_query"].replace("{{.window}}", window)
        total = events["total_query"].replace("{{.window}}", window)
        sloth = f"({error})\n/\n({total})"
        numerator, _, denominator = rule["expr"].rpartition("/")
        assert rule["record"] == f"slo:sli_error:ratio_rate{window}"
        assert normalised(sloth) == normalised(f"{numerator}/({denominator})")


@pytest.mark.parametrize(
    ("name", "problems"),
    [
        (
            "sloth-getting-started.yml",
            ["SLO 'requests-availability': the Sloth SLI (sum(rate(http_request_duration_"],
        ),
        (
            "sloth-k8s-getting-started.yml",
            ["SLO 'requests-availability': the Sloth SLI (sum(rate(http_request_duration_"],
        ),
        (
            "pyrra-apiserver-request-errors.yaml",
            [
                "SLO 'apiserver-read-response-errors': the Pyrra SLI (apiserver_request_total",
                "SLO 'apiserver-write-response-errors': the Pyrra SLI (apiserver_request_total",
            ],
        ),
        (
            "openslo-occurrences-slo.yaml",
            [
                "SLO 'search-slo': a threshold objective (op, value) is not mapped",
                "SLO 'search-slo': the OpenSLO SLI (indicator thresholdMetric) reads metrics",
            ],
        ),
        (
            "openslo-ratio-timeslices.yaml",
            [
                "SLO 'main-page': budgetingMethod RatioTimeslices: agent-sre counts Occurrences",
                "SLO 'main-page': a threshold objective (op, value) is not mapped",
                "SLO 'main-page': the OpenSLO SLI (Any; Any) reads metrics",
            ],
        ),
    ],
)
def test_real_examples_of_other_projects_are_refused_with_the_reason(
    name: str, problems: list[str]
) -> None:
    docs = list(yaml.safe_load_all((DATA / name).read_text()))
    result = import_documents(docs, name)
    assert result.slos == []
    assert len(result.problems) == len(problems)
    for found, expected in zip(result.problems, problems, strict=True):
        assert found.startswith(f"{name}: {expected}"), found
    reasons = " ".join(result.problems)
    if "http_request" in reasons or "apiserver_request" in reasons or "Any;" in reasons:
        assert "is not one agent-sre counts from spans" in reasons


def exported(fmt: str) -> list[Any]:
    spec = SLOSpec.model_validate({"name": "tasks", "target": 0.99, "sli": SLIS[0]})
    return through_yaml(export_documents([spec], fmt))


def test_an_edited_query_is_refused_never_guessed() -> None:
    docs = exported("pyrra")
    docs[0]["spec"]["indicator"]["ratio"]["errors"]["metric"] = 'http_requests_total{code="500"}'
    result = import_documents(docs)
    assert result.slos == []
    assert result.problems == [
        "SLO 'tasks': the SLI queries differ from the ones agent-sre exported for it: an "
        "edited query cannot be mapped back to spans"
    ]


def test_the_documents_fields_win_over_the_annotation() -> None:
    """A team raises the target in its Pyrra file: the import says so."""
    docs = exported("pyrra")
    docs[0]["spec"]["target"] = "99.95"
    docs[0]["spec"]["window"] = "2w"
    (spec,) = import_documents(docs).slos
    assert (spec.target, spec.window) == (0.9995, 14 * 86400)


@pytest.mark.parametrize(
    ("fmt", "edit", "problem"),
    [
        ("openslo", lambda d: d[0]["metadata"]["annotations"].update({ANNOTATION: "{"}),
         "annotation is not JSON"),
        ("openslo", lambda d: d[0]["spec"]["timeWindow"][0].update({"isRolling": False}),
         "calendar-aligned timeWindow"),
        ("openslo", lambda d: d[0]["spec"]["objectives"].append({"target": 0.5}),
         "2 objectives"),
        ("openslo", lambda d: d[0]["spec"].update({"alertPolicies": ["p"]}),
         "alertPolicies are not mapped"),
        ("sloth", lambda d: d[0]["slos"][0].update({"objective": "high"}),
         "objective 'high' is not a percentage"),
        ("pyrra", lambda d: d[0]["spec"].update({"target": "150"}), "target"),
        ("pyrra", lambda d: d[0]["spec"]["indicator"].update({"latency": {}}),
         "2 indicators (latency, ratio): give one"),
        ("pyrra", lambda d: d[0]["spec"].update({"indicator": {"boolGauge": {}}}),
         "indicator 'boolGauge' is not mapped"),
    ],
)  # fmt: skip
def test_what_does_not_map_is_named(fmt: str, edit: Any, problem: str) -> None:
    docs = exported(fmt)
    edit(docs)
    result = import_documents(docs)
    assert result.slos == []
    assert any(problem in p for p in result.problems), result.problems


def test_openslo_referenced_sli_is_followed() -> None:
    (slo,) = exported("openslo")
    indicator = slo["spec"].pop("indicator")
    slo["spec"]["indicatorRef"] = "tasks-events"
    sli = {"apiVersion": "openslo/v1", "kind": "SLI",
           "metadata": {"name": "tasks-events"}, "spec": indicator["spec"]}  # fmt: skip
    (spec,) = import_documents([sli, slo]).slos
    assert spec.name == "tasks"
    missing = import_documents([slo])
    assert missing.problems and "indicatorRef 'tasks-events' names no SLI" in missing.problems[0]


def test_unknown_documents_are_named() -> None:
    result = import_documents([{"kind": "Deployment"}], "x.yaml")
    assert result.problems == ["x.yaml: document 1: not OpenSLO, Sloth or Pyrra"]


SCHEMA_DIR = Path(__file__).parents[2] / "data" / "openslo-schema-v1"


def openslo_validator() -> Any:
    import json

    jsonschema = pytest.importorskip("jsonschema")
    from referencing import Registry, Resource

    resources = []
    for path in SCHEMA_DIR.rglob("*.schema.json"):
        contents = json.loads(path.read_text())
        resources.append((contents["$id"], Resource.from_contents(contents)))
    registry = Registry().with_resources(resources)
    schema = json.loads((SCHEMA_DIR / "openslo.schema.json").read_text())
    return jsonschema.Draft7Validator(schema, registry=registry)


@settings(max_examples=40, deadline=None)
@given(specs=st.lists(slo_specs(), min_size=1, max_size=3).map(unique))
def test_the_openslo_export_validates_against_the_openslo_schema(specs: list[SLOSpec]) -> None:
    validator = openslo_validator()
    for doc in through_yaml(export_documents(specs, "openslo")):
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
        assert errors == [], errors


def test_the_openslo_schema_is_strict_enough_to_fail() -> None:
    (doc,) = exported("openslo")
    del doc["spec"]["budgetingMethod"]
    assert not openslo_validator().is_valid(doc)


GENAI = "gen_ai_client_operation_duration_seconds"
FILTER = 'gen_ai_request_model="gpt-4o",gen_ai_operation_name="chat"'
FILTERED_MATCH = {"gen_ai.request.model": "gpt-4o", "gen_ai.operation.name": "chat"}


def pyrra_doc(indicator: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "pyrra.dev/v1alpha1",
        "kind": "ServiceLevelObjective",
        "metadata": {"name": "llm-calls"},
        "spec": {"target": "99.5", "window": "2w", "indicator": indicator},
    }


def test_genai_metric_slis_of_other_tools_map_to_span_slis() -> None:
    errors = {"ratio": {"errors": {"metric": f'{GENAI}_count{{{FILTER},error_type=~".+"}}'},
                        "total": {"metric": f"{GENAI}_count{{{FILTER}}}"}}}  # fmt: skip
    latency = {"latency": {"success": {"metric": f'{GENAI}_bucket{{{FILTER},le="2.5"}}'},
                           "total": {"metric": f"{GENAI}_count{{{FILTER}}}"}}}  # fmt: skip
    error_query = f'sum(rate({GENAI}_count{{error_type!="",gen_ai_request_model=~"a|b"}}[5m]))'
    total_query = f'sum(rate({GENAI}_count{{gen_ai_request_model=~"a|b"}}[5m]))'
    sloth = {
        "version": "prometheus/v1",
        "service": "agents",
        "slos": [{"name": "llm-calls-b", "objective": 99.5, "sli": {"events": {
            "error_query": error_query.replace("[5m]", "[{{.window}}]"),
            "total_query": total_query.replace("[5m]", "[{{.window}}]"),
        }}}],
    }  # fmt: skip
    openslo = {
        "apiVersion": "openslo/v1",
        "kind": "SLO",
        "metadata": {"name": "llm-calls-c"},
        "spec": {
            "service": "agents",
            "indicator": {"metadata": {"name": "x"}, "spec": {"ratioMetric": {
                "counter": True,
                "good": {"metricSource": {"type": "Prometheus",
                                          "spec": {"query": f'{GENAI}_bucket{{le="1"}}'}}},
                "total": {"metricSource": {"type": "Prometheus",
                                           "spec": {"query": f"{GENAI}_count"}}},
            }}},
            "timeWindow": [{"duration": "28d", "isRolling": True}],
            "budgetingMethod": "Occurrences",
            "objectives": [{"target": 0.99}],
        },
    }  # fmt: skip
    latency_doc = pyrra_doc(latency)
    latency_doc["metadata"]["name"] = "llm-latency"
    result = import_documents([pyrra_doc(errors), latency_doc, sloth, openslo])
    assert result.problems == []
    by_name = {s.name: s for s in result.slos}
    calls = by_name["llm-calls"]
    assert (calls.sli.kind.value, calls.sli.match) == ("llm_success", FILTERED_MATCH)
    assert (calls.target, calls.window) == (0.995, 14 * 86400)
    slow = by_name["llm-latency"]
    assert (slow.sli.kind.value, slow.sli.threshold) == ("latency", 2.5)
    assert slow.sli.match == {"agent.span.kind": "LLM_INFERENCE", **FILTERED_MATCH}
    assert by_name["llm-calls-b"].sli.match == {"gen_ai.request.model": ["a", "b"]}
    assert by_name["llm-calls-b"].window == 30 * 86400  # Sloth's default period
    assert by_name["llm-calls-c"].sli.threshold == 1.0


@pytest.mark.parametrize(
    ("errors", "total", "reason"),
    [
        (f'{GENAI}_count{{job="x",error_type=~".+"}}', f'{GENAI}_count{{job="x"}}',
         "label job is not a span attribute agent-sre knows"),
        (f'{GENAI}_count{{error_type="timeout"}}', f"{GENAI}_count",
         'the error query is not the total with error_type=~".+"'),
        (f'{GENAI}_count{{gen_ai_request_model="a",error_type!=""}}', f"{GENAI}_count",
         "the error query is not the total"),
        (f'{GENAI}_count{{error_type!=""}}', f'{GENAI}_count{{gen_ai_system!~"x"}}',
         "the two queries filter different calls"),
        (f'{GENAI}_count{{error_type!="",gen_ai_system!~"x"}}',
         f'{GENAI}_count{{gen_ai_system!~"x"}}', "matcher gen_ai_system!~'x' is not mapped"),
        ("rate(x[5m]) / 2", f"{GENAI}_count", "are not plain selectors"),
        ("token_usage_total", "token_usage_total", "metric token_usage_total is not one"),
    ],
)  # fmt: skip
def test_queries_that_do_not_describe_spans_are_named(errors: str, total: str, reason: str) -> None:
    doc = pyrra_doc({"ratio": {"errors": {"metric": errors}, "total": {"metric": total}}})
    result = import_documents([doc])
    assert result.slos == []
    (problem,) = result.problems
    assert reason in problem, problem
