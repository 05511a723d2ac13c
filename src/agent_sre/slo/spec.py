"""SLO specifications as written under ``slos:`` (and in ``slo_files:``).

This module only validates what the user wrote; the engine (:mod:`agent_sre.slo.engine`)
turns a validated :class:`SLOSpec` into counters and never reads YAML.
"""

from __future__ import annotations

import re
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Literal, Union

from pydantic import (
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agent_sre.section import DURATION_JSON_SCHEMA, Duration, Section
from agent_sre.slo.windows import (
    HOUR,
    MINUTE,
    AlertWindow,
    SLOWindow,
)
from agent_sre.tracing import conventions as c
from agent_sre.tracing.conventions import AgentSpanKind
from agent_sre.units import format_duration, parse_duration

if TYPE_CHECKING:
    from collections.abc import Iterable


MatchValue = Union[str, bool, int, float]  # noqa: UP007 (a runtime alias on 3.10)
Seconds = Duration
"""Kept for code that imported it; :data:`agent_sre.section.Duration` is the one type."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_PROM_INVALID = re.compile(r"[^A-Za-z0-9_]")
RESERVED_LABELS = frozenset({"slo", "result", "window", "severity", "long_window", "short_window"})
"""Prometheus label names agent-sre itself puts on SLO series and alerts."""


class SLIKind(str, Enum):
    """How a span becomes a valid event and whether it is a good one (see docs/slo.md)."""

    TASK_SUCCESS = "task_success"
    TOOL_CALL_SUCCESS = "tool_call_success"
    LLM_SUCCESS = "llm_success"
    LATENCY = "latency"
    COST_PER_TASK = "cost_per_task"
    POLICY_COMPLIANCE = "policy_compliance"
    DELEGATION_DEPTH = "delegation_depth"
    HALLUCINATION = "hallucination"
    TRUST_SCORE = "trust_score"


_ALL_KINDS = frozenset(AgentSpanKind)

SPAN_KINDS: dict[SLIKind, frozenset[AgentSpanKind]] = {
    SLIKind.TASK_SUCCESS: frozenset({AgentSpanKind.AGENT_TASK}),
    SLIKind.TOOL_CALL_SUCCESS: frozenset({AgentSpanKind.TOOL_CALL}),
    SLIKind.LLM_SUCCESS: frozenset({AgentSpanKind.LLM_INFERENCE}),
    SLIKind.LATENCY: _ALL_KINDS,
    SLIKind.COST_PER_TASK: frozenset({AgentSpanKind.AGENT_TASK}),
    SLIKind.POLICY_COMPLIANCE: frozenset({AgentSpanKind.POLICY_CHECK}),
    SLIKind.DELEGATION_DEPTH: frozenset({AgentSpanKind.DELEGATION}),
    SLIKind.HALLUCINATION: _ALL_KINDS,
    SLIKind.TRUST_SCORE: _ALL_KINDS,
}
"""The span kinds each SLI kind can count (``match`` on ``agent.span.kind`` narrows it)."""

OPT_IN_KINDS: dict[SLIKind, frozenset[AgentSpanKind]] = {
    SLIKind.TASK_SUCCESS: frozenset({AgentSpanKind.DELEGATION}),
}
"""Span kinds an SLI kind counts only when its ``match`` names them: ``task_success`` with
``agent.span.kind: DELEGATION`` is the success of delegated tasks (A2A hand-offs)."""

_THRESHOLD: dict[SLIKind, tuple[bool, str]] = {
    SLIKind.LATENCY: (True, "the longest good duration (e.g. 2s, 500ms)"),
    SLIKind.COST_PER_TASK: (True, "the highest good task cost in USD (e.g. 0.50)"),
    SLIKind.DELEGATION_DEPTH: (True, "the deepest good delegation (e.g. 3)"),
    SLIKind.TRUST_SCORE: (True, "the lowest good trust score (e.g. 0.7)"),
    SLIKind.HALLUCINATION: (False, "a numeric evaluation score above it is bad"),
}
"""Kinds that use a threshold: whether it is required, and what it means."""


def prometheus_label_name(key: str) -> str:
    """``agent.id`` -> ``agent_id``: an attribute key as a Prometheus label name."""
    name = _PROM_INVALID.sub("_", key)
    return f"_{name}" if name[:1].isdigit() else name


class SLISpec(Section):
    """Which spans are valid events and which of them are good."""

    kind: SLIKind
    match: dict[str, MatchValue | list[MatchValue]] = Field({}, validate_default=True)
    """Attribute filters, all of which must hold; a list means any of its values.
    ``agent.span.kind`` is compared with the span's classified kind."""
    threshold: float | None = Field(
        None,
        validate_default=True,
        json_schema_extra={"anyOf": [*DURATION_JSON_SCHEMA["anyOf"], {"type": "null"}]},
    )
    """Per kind: seconds (latency), USD (cost_per_task), depth (delegation_depth),
    minimum score (trust_score), maximum score (hallucination, optional)."""
    attribute: str | None = Field(None, validate_default=True)
    """hallucination only: the evaluation attribute (default ``agent.eval.hallucinated``)."""

    @field_validator("match")
    @classmethod
    def _check_match(
        cls, value: dict[str, MatchValue | list[MatchValue]], info: ValidationInfo
    ) -> dict[str, MatchValue | list[MatchValue]]:
        for key, wanted in value.items():
            if not key:
                raise ValueError("an attribute key is empty")
            if isinstance(wanted, list) and not wanted:
                raise ValueError(f"{key}: an empty list matches nothing")
        kinds = value.get(c.AGENT_SPAN_KIND)
        if kinds is None:
            return value
        listed = {str(kind).upper() for kind in (kinds if isinstance(kinds, list) else [kinds])}
        for kind in sorted(listed):
            if kind not in AgentSpanKind.__members__:
                names = ", ".join(k.value for k in AgentSpanKind)
                raise ValueError(f"{c.AGENT_SPAN_KIND}: {kind!r} is not one of {names}")
        sli_kind = info.data.get("kind")
        countable = (
            SPAN_KINDS[sli_kind] | OPT_IN_KINDS.get(sli_kind, frozenset())
            if (sli_kind is not None)
            else frozenset()
        )
        if sli_kind is not None and not countable & {AgentSpanKind(k) for k in listed}:
            allowed = ", ".join(sorted(k.value for k in countable))
            raise ValueError(
                f"{c.AGENT_SPAN_KIND}: kind {sli_kind.value} only counts {allowed} spans"
            )
        return value

    @field_validator("threshold", mode="before")
    @classmethod
    def _parse_threshold(cls, value: object, info: ValidationInfo) -> object:
        if info.data.get("kind") == SLIKind.LATENCY and isinstance(value, str):
            return parse_duration(value)
        if isinstance(value, bool):
            raise ValueError("must be a number")
        return value

    @field_validator("threshold")
    @classmethod
    def _check_threshold(cls, value: float | None, info: ValidationInfo) -> float | None:
        kind = info.data.get("kind")
        if kind is None:
            return value
        rule = _THRESHOLD.get(kind)
        if rule is None and value is not None:
            raise ValueError(f"not used by kind {kind.value}; remove it")
        if rule is not None and rule[0] and value is None:
            raise ValueError(f"required for kind {kind.value}: {rule[1]}")
        if value is not None and value < 0:
            raise ValueError("must be >= 0")
        return value

    @field_validator("attribute")
    @classmethod
    def _check_attribute(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("kind")
        if value is not None and kind is not None and kind != SLIKind.HALLUCINATION:
            raise ValueError(f"only used by kind hallucination, not {kind.value}")
        if value == "":
            raise ValueError("must not be empty")
        return value

    def span_kinds(self) -> frozenset[AgentSpanKind]:
        """The span kinds this SLI counts: its kind's, narrowed by ``match``."""
        kinds = SPAN_KINDS[self.kind]
        wanted = self.match.get(c.AGENT_SPAN_KIND)
        if wanted is None:
            return kinds
        listed = wanted if isinstance(wanted, list) else [wanted]
        kinds = kinds | OPT_IN_KINDS.get(self.kind, frozenset())
        return kinds & {AgentSpanKind(str(k).upper()) for k in listed}

    @property
    def evaluation_attribute(self) -> str:
        return self.attribute or c.AGENT_EVAL_HALLUCINATED


class AlertWindowSpec(Section):
    """One multiwindow burn-rate alert: fires while both windows burn above ``factor``."""

    severity: Literal["page", "ticket"]
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [  # exactly one of budget_percent and factor (null is not given)
                {"required": [key], "properties": {key: {"not": {"type": "null"}}}}
                for key in ("budget_percent", "factor")
            ]
        }
    )

    long: AlertWindow
    short: AlertWindow
    budget_percent: float | None = Field(None, gt=0, le=100)
    """Share of the SLO window's budget spent over ``long`` that fires the alert."""
    factor: float | None = Field(None, gt=0)
    """The burn rate itself (instead of ``budget_percent``)."""

    @model_validator(mode="after")
    def _check(self) -> AlertWindowSpec:
        if (self.budget_percent is None) == (self.factor is None):
            raise ValueError("give exactly one of budget_percent and factor")
        if self.short >= self.long:
            raise ValueError("short: must be shorter than long")
        return self

    def burn_factor(self, slo_window: float) -> float:
        """The burn rate above which this alert fires, for an SLO over ``slo_window``."""
        if self.factor is not None:
            return self.factor
        assert self.budget_percent is not None
        return self.budget_percent / 100.0 * slo_window / self.long


DEFAULT_ALERTING: tuple[AlertWindowSpec, ...] = (
    AlertWindowSpec(severity="page", long=HOUR, short=5 * MINUTE, budget_percent=2),
    AlertWindowSpec(severity="page", long=6 * HOUR, short=30 * MINUTE, budget_percent=5),
    AlertWindowSpec(severity="ticket", long=24 * HOUR, short=2 * HOUR, budget_percent=10),
    AlertWindowSpec(severity="ticket", long=72 * HOUR, short=6 * HOUR, budget_percent=10),
)
"""SRE Workbook windows; over 30d the factors are 14.4, 6, 3 and 1."""


class SLOSpec(Section):
    """One SLO as declared under ``slos:``."""

    name: str = Field(json_schema_extra={"pattern": _NAME.pattern})
    description: str = ""
    target: float = Field(json_schema_extra={"exclusiveMinimum": 0, "exclusiveMaximum": 1})
    """Ratio of good events, 0 < target < 1 (``0.99`` is 99%)."""
    window: SLOWindow = 30 * 86400.0
    """Rolling window of the error budget, in whole hours (``28d``, ``30d``)."""
    sli: SLISpec
    labels: tuple[str, ...] = ()
    """Attribute keys splitting the SLO into one instance per value set (e.g. ``agent.id``)."""
    max_label_sets: int = Field(100, ge=1, le=100_000)
    """Label sets beyond this many are counted together as ``__overflow__``."""
    alerting: tuple[AlertWindowSpec, ...] | None = Field(None, validate_default=True)
    """Replaces the default burn-rate alerts; ``[]`` turns alerting off."""

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"{value!r} must be 1-128 letters, digits, '_', '-' or '.', "
                "starting with a letter or digit"
            )
        return value

    @field_validator("target", mode="before")
    @classmethod
    def _check_target(cls, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("must be a number between 0 and 1 exclusive (e.g. 0.99)")
        if not 0 < value < 1:
            raise ValueError(f"must be between 0 and 1 exclusive (e.g. 0.99), not {value}")
        return value

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        seen: dict[str, str] = {}
        for key in value:
            name = prometheus_label_name(key) if key else ""
            if not name:
                raise ValueError("an attribute key is empty")
            if name in RESERVED_LABELS:
                raise ValueError(f"{key!r} would clash with agent-sre's own label {name!r}")
            if name in seen:
                raise ValueError(f"{key!r} and {seen[name]!r} give the same label {name!r}")
            seen[name] = key
        return value

    @field_validator("alerting")
    @classmethod
    def _check_alerting(
        cls, value: tuple[AlertWindowSpec, ...] | None, info: ValidationInfo
    ) -> tuple[AlertWindowSpec, ...] | None:
        window = info.data.get("window")
        if window is None:
            return value
        for index, alert in enumerate(DEFAULT_ALERTING if value is None else value):
            if alert.long > window:
                where = "the default" if value is None else f"[{index}]"
                fix = "; give alerting: for a window under 3d" if value is None else ""
                raise ValueError(
                    f"{where} {format_duration(alert.long)} alert window is longer than "
                    f"the {format_duration(window)} SLO window{fix}"
                )
        return value

    @property
    def alert_windows(self) -> tuple[AlertWindowSpec, ...]:
        """The alerting overrides, or the defaults when none are given."""
        return DEFAULT_ALERTING if self.alerting is None else self.alerting

    @property
    def error_budget(self) -> float:
        """The allowed ratio of bad events, ``1 - target``, computed in decimal so that a
        target of 0.99 gives exactly 0.01 (and burn rates come out as written by hand)."""
        return float(Decimal(1) - Decimal(repr(self.target)))


def slo_set_problems(specs: Iterable[SLOSpec]) -> list[str]:
    """Problems of a set of SLOs taken together (today: duplicate names)."""
    seen: dict[str, int] = {}
    problems = []
    for index, spec in enumerate(specs):
        if spec.name in seen:
            problems.append(
                f"slos[{index}].name: {spec.name!r} is already the name of slos[{seen[spec.name]}]"
            )
        else:
            seen[spec.name] = index
    return problems
