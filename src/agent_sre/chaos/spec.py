"""The ``chaos:`` section: experiments, their targets, faults, windows and abort rules.

Example::

    chaos:
      enabled: true                 # nothing is injected without it
      allow_header_faults: false    # per-call faults asked by a request header (test suites)
      experiments:
        - name: openai-errors
          targets: {routes: [openai], share: 0.5}
          faults:
            - {type: error, status: 503, probability: 0.3}
            - {type: latency, delay: 2s, jitter: 500ms, probability: 0.2}
          duration: 10m
          abort_when:
            - {slo: llm, burn_rate_above: 14.4}
            - {error_ratio_above: 0.5, min_calls: 20}
        - {name: tools-down, template: tool-timeout, targets: {routes: [search]}}
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from agent_sre.section import Duration, Section

FaultType = Literal[
    "latency",
    "error",
    "rate_limit",
    "timeout",
    "connection_reset",
    "malformed_response",
    "truncated_stream",
    "slow_stream",
    "token_inflation",
    "tool_error",
    "schema_drift",
]
FAULT_TYPES: tuple[str, ...] = FaultType.__args__  # type: ignore[attr-defined]

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = Weekday.__args__  # type: ignore[attr-defined]
_CLOCK_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class FaultSpec(Section):
    """One fault and the probability it hits a targeted call.

    Only the keys of its ``type`` mean anything (the others keep their defaults):
    ``latency`` (``delay`` + up to ``jitter``), ``error`` (``status``), ``rate_limit``
    (``retry_after``), ``timeout`` (``hold``), ``truncated_stream`` (``after_events``),
    ``slow_stream`` (``delay`` + ``jitter`` between chunks), ``token_inflation``
    (``factor``), ``schema_drift`` (``field``, ``rename_to``).
    """

    type: FaultType
    probability: float = Field(1.0, ge=0, le=1)
    delay: Duration = 1.0
    jitter: Duration = 0.0
    status: int = Field(503, ge=400, le=599)
    """``error``: the status answered, with the provider's own error body for it (500, 503,
    Anthropic's 529 overloaded, ...)."""
    retry_after: Duration = Field(1.0, gt=0)
    hold: Duration = Field(600.0, gt=0)
    """``timeout``: how long the call is held before a 504 (clients usually give up first)."""
    after_events: int = Field(2, ge=0)
    """``truncated_stream``: server-sent events let through before the connection is cut."""
    factor: float = Field(10.0, gt=1)
    """``token_inflation``: what reported token counts are multiplied by."""
    field: str = ""
    """``schema_drift``: the field of the JSON result (dotted path) renamed or dropped."""
    rename_to: str = ""
    """``schema_drift``: its new name; empty drops it."""
    message: str = ""
    """Error message (default: the provider's usual words for the status)."""

    @model_validator(mode="after")
    def _check(self) -> FaultSpec:
        if self.type == "schema_drift" and not self.field:
            raise ValueError("schema_drift needs field (the result field to rename or drop)")
        return self

    @property
    def terminal(self) -> bool:
        """The fault answers the call itself (the provider is never reached)."""
        return self.type in ("error", "rate_limit", "timeout", "connection_reset", "tool_error")


class TargetSpec(Section):
    """Which calls an experiment may touch: every listed key must match (an empty list
    matches anything), then ``share`` of the matching calls are chosen at random."""

    routes: list[str] = []
    agents: list[str] = []
    agent_versions: list[str] = []
    models: list[str] = []
    """Requested models; a trailing ``*`` matches a prefix (``gpt-4o*``)."""
    tools: list[str] = []
    mcp_methods: list[str] = []
    share: float = Field(1.0, ge=0, le=1)


class WindowSpec(Section):
    """A weekly window in UTC: ``start`` to ``end`` (HH:MM) on ``days`` (every day when
    empty); an ``end`` before ``start`` runs past midnight."""

    days: list[Weekday] = []
    start: str = "00:00"
    end: str = "24:00"

    @field_validator("start", "end")
    @classmethod
    def _check_time(cls, value: str) -> str:
        if value != "24:00" and not _CLOCK_TIME.match(value):
            raise ValueError(f"{value!r} is not a time of day (use HH:MM, e.g. 09:30)")
        return value


class SteadyStateSpec(Section):
    """What must hold before an experiment starts (checked at start; a start is refused
    when it does not hold)."""

    slos_healthy: list[str] = []
    """These SLOs must be HEALTHY."""
    max_error_ratio: float | None = Field(None, ge=0, le=1)
    """The targeted calls of the last ``window`` failed at most this often."""
    window: Duration = Field(300.0, gt=0)
    min_calls: int = Field(0, ge=0)
    """Fewer recent calls than this and ``max_error_ratio`` is not judged."""


class AbortRule(Section):
    """One abort condition; give exactly one of the thresholds."""

    slo: str = ""
    """The SLO ``burn_rate_above`` and ``budget_remaining_below`` read."""
    burn_rate_above: float | None = Field(None, gt=0)
    window: Duration = 300.0
    """Burn-rate window (one the SLO reports: 5m, 1h, its alert windows)."""
    budget_remaining_below: float | None = None
    error_ratio_above: float | None = Field(None, ge=0, le=1)
    """Of the calls the experiment targeted since it started."""
    min_calls: int = Field(10, ge=1)
    """``error_ratio_above`` is judged from this many targeted calls on."""
    spend_above_usd: float | None = Field(None, gt=0)
    """USD the targeted calls cost since the start."""

    @model_validator(mode="after")
    def _one(self) -> AbortRule:
        given = [
            key
            for key in (
                "burn_rate_above",
                "budget_remaining_below",
                "error_ratio_above",
                "spend_above_usd",
            )
            if getattr(self, key) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of burn_rate_above, budget_remaining_below, "
                f"error_ratio_above, spend_above_usd (got {', '.join(given) or 'none'})"
            )
        if given[0] in ("burn_rate_above", "budget_remaining_below") and not self.slo:
            raise ValueError(f"{given[0]} needs slo (the SLO it reads)")
        return self

    @property
    def reason(self) -> str:
        """The rule's kind, a bounded metric label."""
        if self.burn_rate_above is not None:
            return "slo_burn_rate"
        if self.budget_remaining_below is not None:
            return "slo_budget"
        if self.error_ratio_above is not None:
            return "error_ratio"
        return "spend"


class ExperimentSpec(Section):
    """One declared experiment (``template`` fills in what the experiment leaves out)."""

    name: str = Field(pattern=_NAME_PATTERN)
    template: str = ""
    description: str = ""
    targets: TargetSpec = TargetSpec()
    faults: list[FaultSpec] = []
    """At least one, here or from the ``template``."""
    duration: Duration = Field(300.0, gt=0)
    observe_after: Duration = Field(60.0, ge=0)
    """How long targeted traffic is watched after the faults stop (recovery)."""
    schedule: list[WindowSpec] = []
    """Windows the experiment starts in by itself (none: started by hand only)."""
    blackout: list[WindowSpec] = []
    """Windows nothing is injected in; a run in progress ends when one opens."""
    max_active_faults: int | None = Field(None, ge=1)
    """Faulted calls in progress at once, at most."""
    steady_state: SteadyStateSpec = SteadyStateSpec()
    abort_when: list[AbortRule] = []

    @model_validator(mode="before")
    @classmethod
    def _apply_template(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("template"):
            return data
        from agent_sre.chaos.templates import TEMPLATES

        name = data["template"]
        if name not in TEMPLATES:
            raise ValueError(f"template {name!r} is not one of {', '.join(sorted(TEMPLATES))}")
        return {**TEMPLATES[name], **data}

    @model_validator(mode="after")
    def _has_faults(self) -> ExperimentSpec:
        if not self.faults:
            raise ValueError("give faults (at least one) or a template")
        return self


class ChaosConfig(Section):
    enabled: bool = False
    """Nothing is injected unless this is true, whatever the admin API is asked."""
    allow_header_faults: bool = False
    """A request header ``x-agent-sre-fault`` asks for a fault on that one call."""
    experiments: list[ExperimentSpec] = []

    @field_validator("experiments")
    @classmethod
    def _unique(cls, experiments: list[ExperimentSpec]) -> list[ExperimentSpec]:
        seen: set[str] = set()
        for experiment in experiments:
            if experiment.name in seen:
                raise ValueError(f"experiment name {experiment.name!r} is given twice")
            seen.add(experiment.name)
        return experiments
