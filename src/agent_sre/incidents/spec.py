"""The ``incidents:`` section: correlation, automatic responses and circuit breakers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from agent_sre.section import Duration, Section
from agent_sre.signals import Severity

SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}

RuleEvent = Literal["signal", "opened", "escalated", "resolved"]


class SignalMatch(Section):
    """Which signals a rule answers: every given field must match (empty: any)."""

    types: list[str] = []
    sources: list[str] = []
    min_severity: Severity = Severity.INFO
    labels: dict[str, str] = {}
    """Labels the signal must carry with exactly these values."""


class ActionSpec(Section):
    """One action of a rule: an operation a component registered (``block_agent``,
    ``unblock_agent``, ``throttle_agent``, ``unthrottle_agent``, ``open_circuit``, ``stop_chaos``,
    ``pause_rollout``, ``rollback_rollout``, ...) or ``notify``."""

    action: str = Field(min_length=1)
    params: dict[str, str] = {}
    """String parameters; ``{label}`` is replaced by the signal's label of that name,
    ``{incident}`` by the incident's id (a missing label skips the action, in the
    timeline)."""


class RuleSpec(Section):
    """On a matching signal or incident event, run actions (at most once per cool-down)."""

    name: str = Field(min_length=1)
    match: SignalMatch = SignalMatch()
    when: list[RuleEvent] = ["signal"]
    """``signal``: every firing signal that matches; ``opened`` / ``escalated`` /
    ``resolved``: the incident a matching signal opened, escalated or resolved."""
    actions: list[ActionSpec] = Field(min_length=1)
    cooldown: Duration = 600.0
    """After running, the same rule with the same parameters waits this long."""
    dry_run: bool = False
    """Only records (timeline, log, metrics) what would have run."""


CircuitScope = Literal["route", "tool", "agent"]


class CircuitBreakerSpec(Section):
    """A circuit per route, tool or agent: opens when the error ratio of recent calls
    passes ``error_ratio`` (with at least ``min_calls``), fails calls fast for
    ``open_for``, then lets ``probes`` calls through and closes when they succeed."""

    name: str = Field(min_length=1)
    per: CircuitScope = "route"
    routes: list[str] = []
    """Only calls on these routes (empty: every route)."""
    error_ratio: float = Field(0.5, gt=0, le=1)
    min_calls: int = Field(10, ge=1)
    window: Duration = 60.0
    open_for: Duration = 30.0
    probes: int = Field(1, ge=1)

    @field_validator("window", "open_for")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be longer than 0s")
        return value


class IncidentsConfig(Section):
    enabled: bool = True
    correlation_window: Duration = 300.0
    """Signals of the same source and type within this long of the incident's last one
    join it (instead of opening another)."""
    group_by: list[str] = []
    """Labels that group signals into one incident whatever their type and source (for
    example ``[agent_id]``: everything about one agent is one incident)."""
    min_severity: Severity = Severity.WARNING
    """Quieter signals are ignored."""
    resolve_when_quiet: Duration = 0.0
    """Resolve an incident whose signals never resolve (one-off events such as budget
    refusals) after this long without a new one; 0 never does."""
    rules: list[RuleSpec] = []
    circuit_breakers: list[CircuitBreakerSpec] = []

    @model_validator(mode="after")
    def _unique_names(self) -> IncidentsConfig:
        for what, names in (
            ("rules", [r.name for r in self.rules]),
            ("circuit_breakers", [b.name for b in self.circuit_breakers]),
        ):
            seen: set[str] = set()
            for name in names:
                if name in seen:
                    raise ValueError(f"{what}: the name {name!r} is used twice")
                seen.add(name)
        return self
