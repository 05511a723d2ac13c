"""Cross-section checks of ``certification:``: the SLOs a criterion names exist, an
objective never lowers an SLO's target, and a rollout step requires a tier that exists."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

    from agent_sre.config import Config
    from agent_sre.config_checks import Problem


def certification_problems(config: Config) -> Iterator[Problem]:
    section = config.certification
    # SLOs from slo_files are only known later; the runtime then names unknown ones in
    # the verdict ("no SLO named ... is configured")
    targets = None if config.slo_files else {slo.name: slo.target for slo in config.slos}
    for index, tier in enumerate(section.tiers):
        if tier.slo is None or targets is None:
            continue
        where = ("certification", "tiers", index, "slo")
        for at, name in enumerate(tier.slo.slos):
            if name not in targets:
                known = ", ".join(sorted(targets)) or "none"
                yield (*where, "slos", at), f"no SLO is named {name!r} (SLOs: {known})"
        objective = tier.slo.objective
        if objective is None:
            continue
        named = tier.slo.slos or list(targets)
        above = [name for name in named if name in targets and targets[name] > objective]
        if above:
            yield (
                (*where, "objective"),
                (
                    f"{objective:g} is below the target of SLO {above[0]!r} "
                    f"({targets[above[0]]:g}); an objective may raise a target, never lower it"
                ),
            )
    names = section.tier_names
    for index, rollout in enumerate(config.rollouts.rollouts):
        for step, spec in enumerate(rollout.steps):
            if spec.require_tier is not None and spec.require_tier not in names:
                yield (
                    ("rollouts", "rollouts", index, "steps", step, "require_tier"),
                    f"no certification tier is named {spec.require_tier!r} "
                    f"(tiers: {', '.join(names)})",
                )
