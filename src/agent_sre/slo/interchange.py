"""SLOs in and out of the formats teams already keep: OpenSLO v1, Sloth and Pyrra.

Export writes each SLO with its SLI as PromQL over ``agent_sre_slo_events_total`` (the
series the daemon exports and :mod:`agent_sre.slo.rules` sums), so another tool computes the
same numbers, plus an ``agent-sre.io/slo`` annotation holding what the format cannot say
(the SLI's span kind and filters, labels, alerting): importing an export gives back the same
SLOs. A document written elsewhere keeps its name, target and window, but its SLI is a query
over metrics this daemon does not compute from spans: import says so, per SLO, and guesses
nothing. Pure: documents in (parsed YAML), documents and problems out.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from agent_sre.jsonbody import read_json
from agent_sre.slo.promql import GENAI_DURATION, map_ratio
from agent_sre.slo.spec import SLOSpec, prometheus_label_name
from agent_sre.slo.windows import format_window
from agent_sre.units import format_duration, parse_duration

if TYPE_CHECKING:
    from collections.abc import Sequence

FORMATS = ("openslo", "sloth", "pyrra")
ANNOTATION = "agent-sre.io/slo"
EVENTS_METRIC = "agent_sre_slo_events_total"
SERVICE = "agent-sre"
SLOTH_DEFAULT_WINDOW = 30 * 86400.0
"""Sloth's SLO period when its spec gives none (``--default-slo-period``)."""
_DNS_NAME = re.compile(r"[^a-z0-9-]+")
_SPACE = re.compile(r"\s+")


@dataclass
class Imported:
    """What import made of some documents."""

    slos: list[SLOSpec] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Per SLO (or document), exactly what could not be mapped; such an SLO is left out."""


# -- export ------------------------------------------------------------------------------


def export_documents(specs: Sequence[SLOSpec], fmt: str) -> list[dict[str, Any]]:
    """``specs`` as documents of ``fmt`` (one per SLO; one Sloth spec for them all)."""
    if fmt == "openslo":
        return [_openslo(spec) for spec in specs]
    if fmt == "pyrra":
        return [_pyrra(spec) for spec in specs]
    if fmt == "sloth":
        slos = [_sloth(spec) for spec in specs]
        return [{"version": "prometheus/v1", "service": SERVICE, "slos": slos}]
    raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")


def written(spec: SLOSpec) -> dict[str, Any]:
    """``spec`` as a user writes it under ``slos:`` (defaults left out, windows as text)."""
    data = spec.model_dump(mode="json", exclude_defaults=True)
    data["target"] = spec.target
    data["window"] = format_duration(spec.window)
    if spec.alerting is not None:
        data["alerting"] = [
            {**alert, "long": format_window(a.long), "short": format_window(a.short)}
            for alert, a in zip(data["alerting"], spec.alerting, strict=True)
        ]
    return data


def sloth_queries(name: str, labels: Sequence[str] = ()) -> tuple[str, str]:
    """Sloth's ``error_query`` and ``total_query`` of SLO ``name``: the numerator and
    denominator of the SLI error ratio :mod:`agent_sre.slo.rules` records, at Sloth's
    ``{{.window}}``."""
    by = ", ".join(["slo", *(prometheus_label_name(k) for k in labels)])
    selector = f'slo="{name}"'
    total = f"sum by ({by}) (increase({EVENTS_METRIC}{{{selector}}}[{{{{.window}}}}]))"
    bad_selector = f'{selector},result="bad"'
    bad = f"sum by ({by}) (increase({EVENTS_METRIC}{{{bad_selector}}}[{{{{.window}}}}]))"
    return f"{bad} or 0 * {total}", total


def counter_queries(name: str) -> tuple[str, str]:
    """The bad and total event counters of SLO ``name`` (OpenSLO's and Pyrra's ratios)."""
    selector = f'slo="{name}"'
    return f'{EVENTS_METRIC}{{{selector},result="bad"}}', f"{EVENTS_METRIC}{{{selector}}}"


def _annotation(spec: SLOSpec) -> str:
    data = written(spec)
    keep = {k: data[k] for k in ("name", "sli", "labels", "max_label_sets", "alerting", "window")
            if k in data}  # fmt: skip
    return json.dumps(keep, sort_keys=True, separators=(",", ":"))


def _dns_name(name: str) -> str:
    return _DNS_NAME.sub("-", name.lower()).strip("-")[:63] or "slo"


def _percent(target: float) -> str:
    return format(Decimal(repr(target)) * 100, "f").rstrip("0").rstrip(".")


def _openslo(spec: SLOSpec) -> dict[str, Any]:
    bad, total = counter_queries(spec.name)

    def source(query: str) -> dict[str, Any]:
        return {"metricSource": {"type": "Prometheus", "spec": {"query": query}}}

    slo_spec: dict[str, Any] = {
        "service": SERVICE,
        "indicator": {
            "metadata": {"name": _dns_name(spec.name)},
            "spec": {"ratioMetric": {"counter": True, "bad": source(bad), "total": source(total)}},
        },
        "timeWindow": [{"duration": format_duration(spec.window), "isRolling": True}],
        "budgetingMethod": "Occurrences",
        "objectives": [{"displayName": spec.name, "target": spec.target}],
    }
    if spec.description:
        slo_spec = {"description": spec.description, **slo_spec}
    return {
        "apiVersion": "openslo/v1",
        "kind": "SLO",
        "metadata": {"name": _dns_name(spec.name), "annotations": {ANNOTATION: _annotation(spec)}},
        "spec": slo_spec,
    }


def _pyrra(spec: SLOSpec) -> dict[str, Any]:
    bad, total = counter_queries(spec.name)
    ratio: dict[str, Any] = {"errors": {"metric": bad}, "total": {"metric": total}}
    if spec.labels:
        ratio["grouping"] = [prometheus_label_name(k) for k in spec.labels]
    return {
        "apiVersion": "pyrra.dev/v1alpha1",
        "kind": "ServiceLevelObjective",
        "metadata": {"name": _dns_name(spec.name), "annotations": {ANNOTATION: _annotation(spec)}},
        "spec": {
            "description": spec.description,
            "target": _percent(spec.target),
            "window": format_duration(spec.window),
            "indicator": {"ratio": ratio},
        },
    }


def _sloth(spec: SLOSpec) -> dict[str, Any]:
    error_query, total_query = sloth_queries(spec.name, spec.labels)
    entry: dict[str, Any] = {"name": spec.name, "objective": float(_percent(spec.target))}
    if spec.description:
        entry["description"] = spec.description
    entry["sli"] = {"events": {"error_query": error_query, "total_query": total_query}}
    # Sloth has no place of its own for the rest: the alerts' annotations carry it
    entry["alerting"] = {
        "name": "AgentSREErrorBudgetBurn",
        "annotations": {ANNOTATION: _annotation(spec)},
        "page_alert": {"disable": True},
        "ticket_alert": {"disable": True},
    }
    return entry


# -- import ------------------------------------------------------------------------------


def detect(doc: Any) -> str | None:
    """The format of one parsed document, or None."""
    if not isinstance(doc, dict):
        return None
    api = str(doc.get("apiVersion", ""))
    if api.startswith("openslo/"):
        return "openslo"
    if api.startswith("pyrra.dev/"):
        return "pyrra"
    if doc.get("version") == "prometheus/v1" or api.startswith("sloth.slok.dev/"):
        return "sloth"
    return None


def import_documents(docs: Sequence[Any], source: str = "") -> Imported:
    """The SLOs of OpenSLO, Sloth and Pyrra documents (any mix), and what did not map."""
    out = Imported()
    where = f"{source}: " if source else ""
    openslo = [d for d in docs if detect(d) == "openslo"]
    for index, doc in enumerate(docs):
        fmt = detect(doc)
        if fmt is None and doc is not None:
            out.problems.append(f"{where}document {index + 1}: not OpenSLO, Sloth or Pyrra")
        elif fmt == "pyrra":
            _take(out, where, *_from_pyrra(doc))
        elif fmt == "sloth":
            spec = doc.get("spec") if "apiVersion" in doc else doc
            for entry in (spec or {}).get("slos") or []:
                _take(out, where, *_from_sloth(entry))
    for doc in openslo:
        if doc.get("kind") == "SLO":
            _take(out, where, *_from_openslo(doc, openslo))
    return out


def _take(out: Imported, where: str, name: str, data: dict[str, Any] | None,
          problems: list[str]) -> None:  # fmt: skip
    if not problems and data is not None:
        try:
            out.slos.append(SLOSpec.model_validate(data))
            return
        except ValidationError as exc:
            problems = [f"{'.'.join(map(str, e['loc'])) or 'slo'}: {e['msg']}"
                        for e in exc.errors()]  # fmt: skip
    out.problems.extend(f"{where}SLO {name!r}: {problem}" for problem in problems)


def _own(annotations: Any, queries: tuple[str, ...], fmt: str, name: str,
         ratio: tuple[str, str | None, str | None] | None = None,
         ) -> tuple[dict[str, Any] | None, list[str]]:  # fmt: skip
    """The fields an agent-sre export keeps in its annotation; else the SLI read from the
    queries (``ratio``: total, bad, good) where they describe agent calls; else why not."""
    text = annotations.get(ANNOTATION) if isinstance(annotations, dict) else None
    if text is None:
        why = ["it is no ratio of two queries"]
        if ratio is not None:
            sli, why = map_ratio(*ratio)
            if sli is not None:
                return {"name": name, "sli": sli}, []
        shown = "; ".join(q for q in queries if q) or "none given"
        return None, [
            f"the {fmt} SLI ({shown}) reads metrics agent-sre does not compute from spans, so "
            f"nothing was mapped: {'; '.join(why)} (agent-sre counts its SLIs from agent spans, "
            f"and maps queries over {GENAI_DURATION} filtered by span attributes)"
        ]
    try:
        data = read_json(text, numbers=True, what=f"the {ANNOTATION} annotation")
    except ValueError:
        return None, [f"the {ANNOTATION} annotation is not JSON"]
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None, [f"the {ANNOTATION} annotation is not an agent-sre SLO"]
    return data, []


def _same_queries(queries: tuple[str, ...], expected: tuple[str, ...]) -> list[str]:
    if tuple(_SPACE.sub("", q) for q in queries) == tuple(_SPACE.sub("", q) for q in expected):
        return []
    return [
        "the SLI queries differ from the ones agent-sre exported for it: an edited query "
        "cannot be mapped back to spans"
    ]


def _labels(data: dict[str, Any]) -> list[str]:
    labels = data.get("labels") or []
    return [str(k) for k in labels] if isinstance(labels, list) else []


def _target_from_percent(value: Any) -> float | None:
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return float(number / 100) if number.is_finite() else None


def _from_pyrra(doc: dict[str, Any]) -> tuple[str, dict[str, Any] | None, list[str]]:
    meta = doc.get("metadata") or {}
    spec = doc.get("spec") or {}
    name = str(meta.get("name", "?"))
    indicator = spec.get("indicator") or {}
    problems = [f"indicator {kind!r} is not mapped (ratio and latency are)"
                for kind in indicator if kind not in ("ratio", "latency")]  # fmt: skip
    if len(indicator) > 1:
        problems.append(f"{len(indicator)} indicators ({', '.join(sorted(indicator))}): give one")
    ratio = indicator.get("ratio") or {}
    latency = indicator.get("latency") or {}
    if ratio:
        queries = (str((ratio.get("errors") or {}).get("metric", "")),
                   str((ratio.get("total") or {}).get("metric", "")))  # fmt: skip
        parts: tuple[str, str | None, str | None] = (queries[1], queries[0], None)
    else:
        queries = (str((latency.get("success") or {}).get("metric", "")),
                   str((latency.get("total") or {}).get("metric", "")))  # fmt: skip
        parts = (queries[1], None, queries[0])
    data, why = _own(meta.get("annotations"), queries, "Pyrra", name, parts)
    if data is not None and ANNOTATION in (meta.get("annotations") or {}):
        why = _same_queries(queries, counter_queries(data["name"]))
    problems += why
    target = _target_from_percent(spec.get("target"))
    if target is None:
        problems.append(f"target {spec.get('target')!r} is not a percentage")
    if data is None or problems:
        return name, None, problems
    out = {**data, "target": target, "description": str(spec.get("description") or "")}
    out["window"] = spec.get("window", "28d")  # Pyrra's default
    out["name"] = _renamed(data, name)
    return out["name"], out, []


def _from_sloth(entry: Any) -> tuple[str, dict[str, Any] | None, list[str]]:
    if not isinstance(entry, dict):
        return "?", None, ["a Sloth SLO entry is not a mapping"]
    name = str(entry.get("name", "?"))
    sli = entry.get("sli") or {}
    problems = [f"SLI {kind!r} is not mapped (only events is)" for kind in sli if kind != "events"]
    events = sli.get("events") or {}
    queries = (  # prometheus/v1 spells them in snake case, the Kubernetes CRD in camel case
        str(events.get("error_query", events.get("errorQuery", ""))),
        str(events.get("total_query", events.get("totalQuery", ""))),
    )
    alerting = entry.get("alerting") or {}
    annotations = alerting.get("annotations")
    data, why = _own(annotations, queries, "Sloth", name, (queries[1], queries[0], None))
    if data is not None and ANNOTATION in (annotations or {}):
        why = _same_queries(queries, sloth_queries(name, _labels(data)))
    problems += why
    target = _target_from_percent(entry.get("objective"))
    if target is None:
        problems.append(f"objective {entry.get('objective')!r} is not a percentage")
    if data is None or problems:
        return name, None, problems
    out = {**data, "name": name, "target": target}
    out["description"] = str(entry.get("description") or "")
    out.setdefault("window", format_duration(SLOTH_DEFAULT_WINDOW))
    return name, out, []


def _from_openslo(doc: dict[str, Any], docs: Sequence[dict[str, Any]]
                  ) -> tuple[str, dict[str, Any] | None, list[str]]:  # fmt: skip
    meta = doc.get("metadata") or {}
    spec = doc.get("spec") or {}
    name = str(meta.get("name", "?"))
    problems: list[str] = []
    indicator = spec.get("indicator")
    if indicator is None and spec.get("indicatorRef"):
        ref = str(spec["indicatorRef"])
        indicator = next((d for d in docs if d.get("kind") == "SLI"
                          and (d.get("metadata") or {}).get("name") == ref), None)  # fmt: skip
        if indicator is None:
            problems.append(f"indicatorRef {ref!r} names no SLI document given")
    sli_spec = (indicator or {}).get("spec") or {}
    ratio = sli_spec.get("ratioMetric")
    parts: tuple[str, str | None, str | None] | None = None
    if ratio is None:
        kinds = ", ".join(sorted(sli_spec)) or "none"
        queries: tuple[str, ...] = (f"indicator {kinds}",)
    else:
        counted = "good" if "good" in ratio else "bad"
        queries = tuple(_openslo_query(ratio.get(part)) for part in (counted, "total"))
        if counted == "good":
            parts = (queries[1], None, queries[0])
        else:
            parts = (queries[1], queries[0], None)
    windows = spec.get("timeWindow") or []
    if len(windows) != 1:
        problems.append(f"{len(windows)} timeWindows: agent-sre takes exactly one")
    elif not (windows[0] or {}).get("isRolling", False):
        problems.append("a calendar-aligned timeWindow is not mapped (agent-sre windows roll)")
    method = spec.get("budgetingMethod", "Occurrences")
    if method != "Occurrences":
        problems.append(f"budgetingMethod {method}: agent-sre counts Occurrences")
    objectives = spec.get("objectives") or []
    if len(objectives) != 1:
        problems.append(f"{len(objectives)} objectives: agent-sre takes exactly one")
    objective = objectives[0] if len(objectives) == 1 and isinstance(objectives[0], dict) else {}
    if "op" in objective or "value" in objective:
        problems.append("a threshold objective (op, value) is not mapped")
    if spec.get("alertPolicies"):
        problems.append("alertPolicies are not mapped (agent-sre's burn-rate alerts apply)")
    data, why = _own(meta.get("annotations"), queries, "OpenSLO", name, parts)
    if data is not None and ANNOTATION in (meta.get("annotations") or {}):
        why = _same_queries(queries, counter_queries(data["name"]))
    problems += why
    if data is None or problems:
        return name, None, problems
    out = {**data, "target": objective.get("target"), "name": _renamed(data, name)}
    out["description"] = str(spec.get("description") or "")
    out["window"] = _openslo_window(str(windows[0].get("duration", "")))
    return out["name"], out, []


def _openslo_query(part: Any) -> str:
    source = (part or {}).get("metricSource") or {}
    return str((source.get("spec") or {}).get("query", "")) if isinstance(source, dict) else ""


def _openslo_window(text: str) -> Any:
    """OpenSLO's duration shorthand (m, h, d, w; M, Q, Y are calendar units) as seconds."""
    try:
        return parse_duration(text)
    except ValueError:
        return text  # the model's error names it


def _renamed(data: dict[str, Any], name: str) -> str:
    """The SLO's own name when the document's is its export (``Tasks.OK`` -> ``tasks-ok``)."""
    own = str(data.get("name", ""))
    return own if own and _dns_name(own) == name else name
