"""Checks of the ``incidents:`` and ``alerting:`` sections against the rest of the file:
circuit breakers name routes that exist, ``notify`` actions name receivers that exist."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

    from agent_sre.config import Config
    from agent_sre.config_checks import Problem


def incident_problems(config: Config) -> Iterator[Problem]:
    routes = {route.name for route in config.proxy.routes}
    for b, breaker in enumerate(config.incidents.circuit_breakers):
        for r, route in enumerate(breaker.routes):
            if route not in routes:
                yield (
                    ("incidents", "circuit_breakers", b, "routes", r),
                    f"no proxy route is named {route!r} (routes: {', '.join(sorted(routes))})",
                )
    receivers = {receiver.name for receiver in config.alerting.receivers}
    for i, rule in enumerate(config.incidents.rules):
        for a, action in enumerate(rule.actions):
            if action.action != "notify":
                continue
            named = [n.strip() for n in action.params.get("receivers", "").split(",")]
            for name in (n for n in named if n):
                if name not in receivers:
                    yield (
                        ("incidents", "rules", i, "actions", a, "params", "receivers"),
                        f"no alerting receiver is named {name!r}",
                    )
