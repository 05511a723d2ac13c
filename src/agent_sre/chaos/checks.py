"""Cross-field checks of the ``chaos:`` section: what an experiment names must exist (a typo
would make an experiment that never matches or an abort rule that never trips)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

    from agent_sre.config import Config
    from agent_sre.config_checks import Problem


def chaos_problems(config: Config) -> Iterator[Problem]:
    routes = {route.name for route in config.proxy.routes}
    # SLOs from slo_files are only known later; then the runtime reports unknown names
    slos = None if config.slo_files else {slo.name for slo in config.slos}
    for index, experiment in enumerate(config.chaos.experiments):
        where = ("chaos", "experiments", index)
        for at, route in enumerate(experiment.targets.routes):
            if route not in routes:
                yield (
                    (*where, "targets", "routes", at),
                    f"no proxy route is named {route!r} (routes: {', '.join(sorted(routes))})",
                )
        if slos is None:
            continue
        for at, name in enumerate(experiment.steady_state.slos_healthy):
            if name not in slos:
                yield (*where, "steady_state", "slos_healthy", at), f"no SLO is named {name!r}"
        for at, rule in enumerate(experiment.abort_when):
            if rule.slo and rule.slo not in slos:
                yield (*where, "abort_when", at, "slo"), f"no SLO is named {rule.slo!r}"
