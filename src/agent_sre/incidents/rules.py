"""Automatic responses: rules that turn matching signals and incident events into actions,
at most once per cool-down for the same parameters, or only recorded in dry-run."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent_sre.bounded import BoundedMap
from agent_sre.incidents.spec import SEVERITY_RANK

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agent_sre.bounded import OnEvict
    from agent_sre.incidents.book import Change
    from agent_sre.incidents.spec import RuleSpec, SignalMatch
    from agent_sre.signals import Signal

MAX_COOLDOWNS = 10_000
"""Cool-downs kept (one per rule, action and rendered parameters), least recently used out."""
RunKey = tuple[str, str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class PlannedAction:
    """An action a rule asks for: run it (or record it when ``dry_run``), unless
    ``skipped`` says why not (cool-down, missing label)."""

    rule: str
    action: str
    params: dict[str, str]
    dry_run: bool
    skipped: str = ""
    cooling_down: bool = False
    """Skipped because the rule ran with these parameters within its cool-down (counted,
    not added to the timeline: a flapping signal must not flood it either)."""


def matches(match: SignalMatch, signal: Signal) -> bool:
    if match.types and signal.type not in match.types:
        return False
    if match.sources and signal.source not in match.sources:
        return False
    if SEVERITY_RANK[signal.severity] < SEVERITY_RANK[match.min_severity]:
        return False
    return all(signal.labels.get(k) == v for k, v in match.labels.items())


class RuleBook:
    """The configured rules and when each last ran (per rendered parameters)."""

    def __init__(self, rules: Sequence[RuleSpec], on_evict: OnEvict | None = None) -> None:
        self.rules = tuple(rules)
        # keyed by rendered parameters, which often hold client-chosen agent ids; an entry
        # idle past the longest cool-down decides nothing any more
        idle = max((rule.cooldown for rule in self.rules), default=0.0)
        self._last_run: BoundedMap[RunKey, float] = BoundedMap(
            "rule_cooldowns", MAX_COOLDOWNS, idle_seconds=idle or None, on_evict=on_evict
        )

    def carry_over(self, old: RuleBook) -> None:
        """Keeps the cool-downs of rules that still exist (after a reload)."""
        names = {rule.name for rule in self.rules}
        for key, last in old._last_run.items():
            if key[0] in names:
                self._last_run.put(key, last, last)

    def plan(self, change: Change, now: float) -> list[PlannedAction]:
        """The actions ``change`` calls for, in rule order."""
        signal = change.signal
        if signal is None:
            return []
        event = "signal" if change.event in ("signal", "deduped") else change.event
        planned: list[PlannedAction] = []
        for rule in self.rules:
            if not matches(rule.match, signal):
                continue
            fired = event in rule.when or (
                "signal" in rule.when and event in ("opened", "escalated")
            )
            if not fired or (event == "signal" and signal.state.value != "firing"):
                continue
            values = {**signal.labels, "incident": change.incident.id}
            for spec in rule.actions:
                params, missing = _render(spec.params, values)
                if missing:
                    planned.append(
                        PlannedAction(
                            rule.name, spec.action, params, rule.dry_run,
                            f"the signal has no label {missing!r}",
                        )
                    )  # fmt: skip
                    continue
                key = (rule.name, spec.action, tuple(sorted(params.items())))
                last = self._last_run.get(key, now)
                if last is not None and now - last < rule.cooldown:
                    left = rule.cooldown - (now - last)
                    planned.append(
                        PlannedAction(
                            rule.name, spec.action, params, rule.dry_run,
                            f"cooling down ({left:.0f}s left)", cooling_down=True,
                        )
                    )  # fmt: skip
                    continue
                self._last_run.put(key, now, now)
                planned.append(PlannedAction(rule.name, spec.action, params, rule.dry_run))
        return planned


def _render(params: dict[str, str], values: dict[str, str]) -> tuple[dict[str, str], str]:
    """``params`` with ``{label}`` filled in (label names may hold dots: ``{agent.id}``);
    the first missing label's name, if any."""
    rendered: dict[str, str] = {}
    for name, template in params.items():
        for field_name in _FIELD.findall(template):
            if field_name not in values:
                return rendered, field_name
        rendered[name] = _FIELD.sub(lambda m: values[m.group(1)], template)
    return rendered, ""


_FIELD = re.compile(r"\{([^{}]+)\}")
