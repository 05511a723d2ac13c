"""The four custom resources and where each lands in the daemons' configuration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent_sre.chaos.spec import ExperimentSpec
from agent_sre.cost.spec import BudgetSpec
from agent_sre.delivery.spec import RolloutSpec
from agent_sre.slo.spec import SLOSpec

if TYPE_CHECKING:
    from agent_sre.section import Section

GROUP = "agent-sre.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    type: str
    path: str
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class Kind:
    """One custom resource: its spec is one entry of a configuration list, less ``name``
    (the entry's name is the resource's ``metadata.name``)."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    model: type[Section]
    section: tuple[str, ...]
    """Where the entries live in the configuration, e.g. ``("budgets", "budgets")``."""
    columns: tuple[PrinterColumn, ...]
    status: dict[str, str]
    """Status fields this kind reports (name -> OpenAPI type), beside the common ones."""

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def section_path(self) -> str:
        """The configuration path as ``agent-sre validate`` names it (``budgets.budgets``)."""
        return ".".join(self.section)


_VALID = PrinterColumn(
    "Valid", "string", '.status.conditions[?(@.type=="Valid")].status', "spec accepted"
)
_APPLIED = PrinterColumn(
    "Applied", "string", ".status.applied", "daemons running it / daemons found"
)
_AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp")

SLO = Kind(
    kind="AgentSLO",
    plural="agentslos",
    short_names=("aslo",),
    model=SLOSpec,
    section=("slos",),
    columns=(
        PrinterColumn("Target", "number", ".spec.target"),
        PrinterColumn("Window", "string", ".spec.window"),
        PrinterColumn(
            "Attainment", "number", ".status.attainment", "good / valid events, all daemons"
        ),
        PrinterColumn(
            "Budget Left", "number", ".status.errorBudgetRemaining", "share of the error budget"
        ),
        PrinterColumn("Source", "string", ".status.source", "prometheus or daemons", priority=1),
        _VALID,
        _APPLIED,
        _AGE,
    ),
    status={
        "attainment": "number",
        "errorBudgetRemaining": "number",
        "good": "integer",
        "valid": "integer",
        "burnRates": "object",
        "source": "string",
    },
)
BUDGET = Kind(
    kind="AgentBudget",
    plural="agentbudgets",
    short_names=("abudget",),
    model=BudgetSpec,
    section=("budgets", "budgets"),
    columns=(
        PrinterColumn("Scope", "string", ".spec.scope"),
        PrinterColumn("Limit", "number", ".spec.limit_usd", "USD per window"),
        PrinterColumn("Window", "string", ".spec.window"),
        PrinterColumn("Spent", "number", ".status.spentUsd", "USD this window, all daemons"),
        PrinterColumn("Left", "number", ".status.leftUsd"),
        _VALID,
        _APPLIED,
        _AGE,
    ),
    status={"spentUsd": "number", "leftUsd": "number", "exhausted": "boolean"},
)
EXPERIMENT = Kind(
    kind="AgentChaosExperiment",
    plural="agentchaosexperiments",
    short_names=("achaos",),
    model=ExperimentSpec,
    section=("chaos", "experiments"),
    columns=(
        PrinterColumn("Phase", "string", ".status.phase"),
        PrinterColumn("Result", "string", ".status.result"),
        PrinterColumn("Score", "number", ".status.resilienceScore"),
        _VALID,
        _APPLIED,
        _AGE,
    ),
    status={"phase": "string", "result": "string", "resilienceScore": "number"},
)
ROLLOUT = Kind(
    kind="AgentRollout",
    plural="agentrollouts",
    short_names=("arollout",),
    model=RolloutSpec,
    section=("rollouts", "rollouts"),
    columns=(
        PrinterColumn("Route", "string", ".spec.route"),
        PrinterColumn("Phase", "string", ".status.phase"),
        PrinterColumn("Step", "integer", ".status.step"),
        PrinterColumn("Weight", "number", ".status.weight", "candidate's share, percent"),
        PrinterColumn("Verdict", "string", ".status.verdict", "the last gate's verdict"),
        _VALID,
        _APPLIED,
        _AGE,
    ),
    status={"phase": "string", "step": "integer", "weight": "number", "verdict": "string"},
)

KINDS: tuple[Kind, ...] = (SLO, BUDGET, EXPERIMENT, ROLLOUT)
"""In the order they are applied: later kinds refer to earlier ones (an experiment's steady
state and a rollout's analysis name SLOs)."""

BY_KIND = {kind.kind: kind for kind in KINDS}
BY_PLURAL = {kind.plural: kind for kind in KINDS}
