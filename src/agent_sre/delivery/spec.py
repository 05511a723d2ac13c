"""Rollouts as written under ``rollouts:`` (or posted to ``POST /v1/rollouts``).

Only validation lives here; :mod:`agent_sre.delivery.rollout` runs a validated spec.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from agent_sre.gateway.providers import PROVIDERS
from agent_sre.section import Duration, Section

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from agent_sre.config import Config

Metric = Literal[
    "success_ratio", "latency_p95", "ttft_p95", "cost_per_call", "cost_per_task", "tokens_per_call"
]
HIGHER_IS_BETTER = frozenset({"success_ratio"})
"""Metrics where the canary is worse when lower; for every other one, worse is higher."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MODEL_APIS = frozenset(name for name, provider in PROVIDERS.items() if provider.llm)
"""Route API shapes whose requests name the model (``vary: model`` needs one)."""


class CheckSpec(Section):
    """One gate of a step's analysis: the canary against a fixed limit, against the
    baseline, or both.

    Attributes:
        metric: what is compared (per call, or per task for ``cost_per_task``).
        threshold: the canary's limit: a minimum for ``success_ratio``, else a maximum.
        max_relative_change: how much worse than the baseline the canary may be, as a
            fraction of the baseline's value (0.2: 20% worse); failing it also needs the
            Mann-Whitney U test to find the canary worse at the analysis' confidence.
    """

    metric: Metric
    threshold: float | None = Field(default=None, ge=0)
    max_relative_change: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_limit(self) -> CheckSpec:
        if self.threshold is None and self.max_relative_change is None:
            raise ValueError("give threshold, max_relative_change or both")
        if self.metric == "success_ratio" and self.threshold is not None and self.threshold > 1:
            raise ValueError("threshold: a success ratio is at most 1")
        return self


def _default_checks() -> list[CheckSpec]:
    return [
        CheckSpec(metric="success_ratio", max_relative_change=0.02),
        CheckSpec(metric="latency_p95", max_relative_change=0.25),
        CheckSpec(metric="cost_per_call", max_relative_change=0.25),
    ]


class AnalysisSpec(Section):
    """How every step is judged: baseline against canary over the step's calls.

    Attributes:
        min_samples: calls (tasks for ``cost_per_task``) each variant needs before a check
            gives a verdict; fewer give ``wait``.
        confidence: of the one-sided Mann-Whitney U test that the canary is worse.
        checks: the gates.
        slo: an SLO (by name) whose current (5m) burn rate rolls the rollout back when it
            passes ``max_burn_rate``.
    """

    min_samples: int = Field(default=50, ge=1)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    checks: list[CheckSpec] = Field(default_factory=_default_checks)
    slo: str | None = None
    max_burn_rate: float = Field(default=10.0, gt=0)


class StepSpec(Section):
    """One step: the candidate's share of traffic and how long it lasts.

    Attributes:
        weight: percent of tasks (or, in shadow mode, of calls mirrored) given the candidate.
        duration: how long the step runs before its analysis may promote it.
        pause: wait at this step until ``promote`` (an operator or an automatic response).
    """

    weight: float = Field(gt=0, le=100)
    duration: Duration | None = None
    pause: bool = False
    require_tier: str | None = None
    """The certification tier (``certification.tiers``) the candidate version must hold
    before the rollout enters this step (``vary: agent_version`` only; not the first
    step). Until it does, the rollout stays at the step before, saying what is missing."""

    @model_validator(mode="after")
    def _how_long(self) -> StepSpec:
        if self.duration is None and not self.pause:
            raise ValueError("give the step a duration, or pause: true to await promotion")
        if self.duration is not None and self.duration <= 0:
            raise ValueError("duration must be more than 0")
        return self


class RolloutSpec(Section):
    """One rollout.

    Attributes:
        name: how the API, the CLI, metrics and spans name it.
        route: the proxy route whose calls take part.
        vary: ``model`` rewrites the request's model, ``upstream`` sends the call to another
            upstream URL, ``agent_version`` only observes calls by their ``X-Agent-Version``
            (the agents or their mesh do the routing; the weight is published for them).
        baseline: ``model``: the model callers ask for (only those calls take part; empty:
            any); ``agent_version``: the baseline version; ``upstream``: unused.
        candidate: the new model, upstream URL or agent version.
        mode: ``canary`` answers the candidate's share from the candidate; ``shadow`` answers
            every call from the baseline and mirrors the share to the candidate in the
            background (``model`` and ``upstream`` rollouts only).
        shadow_budget_usd: what mirrored calls may cost in all; mirroring stops past it.
    """

    name: str
    route: str
    vary: Literal["model", "upstream", "agent_version"] = "model"
    agent: str = ""
    """``vary: agent_version``: the agent whose versions roll out (its certification is
    what ``require_tier`` reads, and its rollout history what certification reads)."""
    baseline: str = ""
    candidate: str
    mode: Literal["canary", "shadow"] = "canary"
    steps: list[StepSpec] = Field(min_length=1)
    analysis: AnalysisSpec = AnalysisSpec()
    shadow_budget_usd: float = Field(default=1.0, ge=0)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r} is not a rollout name (letters, digits, _ . -)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RolloutSpec:
        if not self.candidate:
            raise ValueError("candidate: give the new model, upstream or agent version")
        if self.vary == "upstream" and not self.candidate.startswith(("http://", "https://")):
            raise ValueError(f"candidate: {self.candidate!r} is not an http(s) upstream URL")
        if self.vary == "agent_version" and self.mode == "shadow":
            raise ValueError("mode: shadow needs vary: model or upstream (the proxy mirrors)")
        if self.vary == "agent_version" and not self.baseline:
            raise ValueError("baseline: give the baseline agent version")
        if self.baseline and self.vary != "upstream" and self.baseline == self.candidate:
            raise ValueError("candidate: the same as the baseline")
        gated = [index for index, step in enumerate(self.steps) if step.require_tier]
        if gated and (self.vary != "agent_version" or not self.agent):
            raise ValueError(
                f"steps[{gated[0]}].require_tier: needs vary: agent_version and agent (the "
                "agent whose candidate version is certified)"
            )
        if gated and gated[0] == 0:
            raise ValueError(
                "steps[0].require_tier: the first step is where a rollout starts; require the "
                "tier from the second step (give the first a small weight)"
            )
        return self


class RolloutsConfig(Section):
    """The ``rollouts:`` section.

    Attributes:
        evaluate_every: how often each rollout's analysis runs and its steps advance.
        max_samples: calls kept per variant and step (the oldest go first).
        rollouts: the rollouts declared in the file (more may be posted to the admin API).
    """

    evaluate_every: Duration = 10.0
    max_samples: int = Field(default=10_000, ge=10)
    rollouts: list[RolloutSpec] = []

    @field_validator("rollouts")
    @classmethod
    def _unique(cls, rollouts: list[RolloutSpec]) -> list[RolloutSpec]:
        seen: set[str] = set()
        for index, rollout in enumerate(rollouts):
            if rollout.name in seen:
                raise ValueError(f"rollouts[{index}].name: {rollout.name!r} is given twice")
            seen.add(rollout.name)
        return rollouts

    @model_validator(mode="after")
    def _positive(self) -> RolloutsConfig:
        if self.evaluate_every <= 0:
            raise ValueError("evaluate_every must be more than 0")
        return self


def rollout_problems(config: Config) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Problems between ``rollouts`` and the rest of the file: routes and SLOs named."""
    routes = {route.name: route for route in config.proxy.routes}
    slos = {slo.name for slo in config.slos}
    for index, rollout in enumerate(config.rollouts.rollouts):
        problem = spec_problem(rollout, routes, slos)
        if problem is not None:
            field, message = problem
            yield ("rollouts", "rollouts", index, field), message


def spec_problem(
    rollout: RolloutSpec,
    routes: Mapping[str, object],
    slos: set[str] | None,
    tiers: Sequence[str] | None = None,
) -> tuple[str, str] | None:
    """The first problem of ``rollout`` against the proxy's routes (and the SLOs and
    certification tiers, when known), as ``(field, message)``."""
    route = routes.get(rollout.route)
    if route is None:
        known = ", ".join(sorted(routes)) or "none"
        return "route", f"no proxy route named {rollout.route!r} (routes: {known})"
    api = getattr(route, "api", "")
    if rollout.vary == "model" and api not in MODEL_APIS:
        return "vary", f"route {rollout.route!r} ({api}) names no model; vary its upstream"
    slo = rollout.analysis.slo
    if slos is not None and slo is not None and slo not in slos:
        return "analysis", f"slo: no SLO named {slo!r}"
    for index, step in enumerate(rollout.steps):
        if tiers is not None and step.require_tier is not None and step.require_tier not in tiers:
            return (
                f"steps[{index}].require_tier",
                f"no certification tier is named {step.require_tier!r} (tiers: {', '.join(tiers)})",
            )
    return None
