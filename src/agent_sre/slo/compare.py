"""Comparing two SLO sets, for a CI gate: targets are only ever raised, SLOs never dropped."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from agent_sre.slo.spec import SLOSpec


def compare_slo_sets(old: Iterable[SLOSpec], new: Iterable[SLOSpec]) -> list[str]:
    """The problems of moving from ``old`` to ``new``: an SLO removed, or its target lowered.

    Raising a target, adding an SLO or changing anything else is not a problem.
    """
    current = {spec.name: spec for spec in new}
    problems = []
    for spec in old:
        after = current.get(spec.name)
        if after is None:
            problems.append(f"slo {spec.name!r} was removed")
        elif after.target < spec.target:
            problems.append(
                f"slo {spec.name!r}: target lowered from {spec.target} to {after.target}"
            )
    return problems
