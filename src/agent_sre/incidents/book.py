"""Correlation, dedup, escalation and lifecycle: signals in, incident changes out.

A firing signal joins the open incident of its group (same source and type, or the same
values of the declared grouping labels) if that incident heard from its group within the
correlation window; otherwise it opens a new one. A repeat of a signal already firing is
counted, not added to the timeline again; a louder one escalates the incident. A resolved
signal removes its key; when none is left firing the incident resolves. People acknowledge
and resolve by hand.

Signals often carry client-chosen labels (agent ids), so every collection is bounded and
what a bound drops is reported to ``on_evict`` (counted by the daemon): at most
:data:`MAX_OPEN_INCIDENTS` open incidents (a new one closes the quietest, least recently
heard, never a louder one than itself), :data:`MAX_AGENTS_PER_INCIDENT` agents and
:data:`MAX_ACTIVE_SIGNALS` firing signal keys per incident.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from agent_sre.incidents.model import MAX_TRACES, Incident, IncidentState
from agent_sre.incidents.spec import SEVERITY_RANK
from agent_sre.signals import Signal, SignalState

if TYPE_CHECKING:
    from collections.abc import Iterable

    from agent_sre.bounded import OnEvict
    from agent_sre.incidents.spec import IncidentsConfig

Event = Literal["opened", "signal", "escalated", "deduped", "resolved", "acknowledged"]

AGENT_LABELS = ("agent_id", "agent.id", "agent")
TRACE_KEYS = ("trace_id", "trace_ids")
MAX_OPEN_INCIDENTS = 1000
MAX_AGENTS_PER_INCIDENT = 100
MAX_ACTIVE_SIGNALS = 1000
"""Firing signal keys one incident tracks (the oldest goes first; its value with it)."""


@dataclass(frozen=True)
class Change:
    """What a signal or an operator did to an incident."""

    incident: Incident
    event: Event
    signal: Signal | None = None
    previous_severity: str | None = None


def signal_key(signal: Signal) -> str:
    """``source/type{k=v,...}``: the identity a resolved signal closes."""
    labels = ",".join(f"{k}={v}" for k, v in sorted(signal.labels.items()))
    return f"{signal.source}/{signal.type}{{{labels}}}"


class IncidentBook:
    """The incidents of one node, open and recent, and the rules that change them."""

    def __init__(
        self, config: IncidentsConfig, next_number: int = 1, on_evict: OnEvict | None = None
    ) -> None:
        self.config = config
        self.incidents: dict[str, Incident] = {}
        self.next_number = next_number
        self.on_evict = on_evict
        self.evictions = 0

    def load(self, incidents: Iterable[Incident]) -> None:
        """Takes over incidents read back from the store (after a restart)."""
        for incident in incidents:
            self.incidents[incident.id] = incident
            number = _number(incident.id)
            if number >= self.next_number:
                self.next_number = number + 1

    def open_incidents(self) -> list[Incident]:
        return [i for i in self.incidents.values() if i.is_open]

    def group_of(self, signal: Signal) -> str:
        grouping = [(k, signal.labels[k]) for k in self.config.group_by if k in signal.labels]
        if grouping:
            return "labels:" + ",".join(f"{k}={v}" for k, v in grouping)
        return f"type:{signal.source}/{signal.type}"

    # -- signals --------------------------------------------------------------------------

    def observe(self, signal: Signal, now: float) -> list[Change]:
        """The changes ``signal`` makes (none for a quiet or unknown resolved one)."""
        key = signal_key(signal)
        if signal.state is SignalState.RESOLVED:
            return self._resolve_signal(signal, key, now)
        if SEVERITY_RANK[signal.severity] < SEVERITY_RANK[self.config.min_severity]:
            return []
        incident = self._joinable(signal, key, now)
        if incident is None:
            made_room = self._make_room(signal, now)
            if made_room is None:
                return []
            incident = self._open(signal, now)
            self._absorb(incident, signal, key)
            incident.note(now, "signal", signal.message, **_entry(signal))
            return [*made_room, Change(incident, "opened", signal)]
        repeat = key in incident.active
        self._absorb(incident, signal, key)
        if SEVERITY_RANK[signal.severity] > SEVERITY_RANK[incident.severity]:
            previous = incident.severity
            incident.severity = signal.severity
            incident.note(now, "signal", signal.message, **_entry(signal))
            incident.note(
                now,
                "escalated",
                f"severity {previous.value} -> {signal.severity.value}",
                previous=previous.value,
            )
            return [Change(incident, "escalated", signal, previous.value)]
        if repeat:
            return [Change(incident, "deduped", signal)]
        incident.note(now, "signal", signal.message, **_entry(signal))
        return [Change(incident, "signal", signal)]

    def tick(self, now: float) -> list[Change]:
        """Resolves incidents quiet for ``resolve_when_quiet`` (when set)."""
        quiet = self.config.resolve_when_quiet
        if quiet <= 0:
            return []
        return [
            self._close(i, now, "quiet", f"no signal for {quiet:g}s")
            for i in self.open_incidents()
            if now - i.last_signal_at >= quiet
        ]

    # -- operators ------------------------------------------------------------------------

    def acknowledge(self, incident_id: str, now: float, who: str = "operator") -> Change:
        incident = self.incidents[incident_id]
        if incident.state is IncidentState.OPEN:
            incident.state = IncidentState.ACKNOWLEDGED
            incident.acknowledged_at = now
            incident.note(now, "acknowledged", f"acknowledged by {who}")
        return Change(incident, "acknowledged")

    def resolve(self, incident_id: str, now: float, who: str = "operator") -> Change:
        incident = self.incidents[incident_id]
        if not incident.is_open:
            return Change(incident, "resolved")
        return self._close(incident, now, who, f"resolved by {who}")

    def forget_resolved_before(self, before: float) -> list[str]:
        """Drops resolved incidents older than ``before`` from memory; returns their ids."""
        gone = [
            i.id
            for i in self.incidents.values()
            if not i.is_open and i.resolved_at is not None and i.resolved_at < before
        ]
        for incident_id in gone:
            del self.incidents[incident_id]
        return gone

    # -- inside ---------------------------------------------------------------------------

    def _joinable(self, signal: Signal, key: str, now: float) -> Incident | None:
        group = self.group_of(signal)
        window = self.config.correlation_window
        for incident in self.incidents.values():
            if not incident.is_open:
                continue
            if key in incident.active:
                return incident
            if incident.group == group and now - incident.last_signal_at <= window:
                return incident
        return None

    def _make_room(self, signal: Signal, now: float) -> list[Change] | None:
        """Room for one more open incident: none needed ([]), the quietest open one closed
        (its change), or None when every open one is louder than ``signal`` (dropped)."""
        open_now = self.open_incidents()
        if len(open_now) < MAX_OPEN_INCIDENTS:
            return []
        victim = min(open_now, key=lambda i: (SEVERITY_RANK[i.severity], i.last_signal_at))
        if SEVERITY_RANK[victim.severity] > SEVERITY_RANK[signal.severity]:
            self._evicted("incidents_open", signal_key(signal))
            return None
        self._evicted("incidents_open", victim.id)
        message = f"closed to make room: more than {MAX_OPEN_INCIDENTS} incidents open"
        return [self._close(victim, now, "evicted", message)]

    def _evicted(self, name: str, key: object) -> None:
        self.evictions += 1
        if self.on_evict is not None:
            self.on_evict(name, key)

    def _open(self, signal: Signal, now: float) -> Incident:
        incident = Incident(
            id=f"inc-{self.next_number}",
            group=self.group_of(signal),
            title=signal.message,
            type=signal.type,
            source=signal.source,
            severity=signal.severity,
            opened_at=now,
            last_signal_at=now,
        )
        self.next_number += 1
        self.incidents[incident.id] = incident
        return incident

    def _absorb(self, incident: Incident, signal: Signal, key: str) -> None:
        incident.signals += 1
        incident.last_signal_at = max(incident.last_signal_at, signal.at)
        if key not in incident.active:
            incident.active.append(key)
            if len(incident.active) > MAX_ACTIVE_SIGNALS:
                gone = incident.active.pop(0)
                incident.values.pop(gone, None)
                self._evicted("incident_signals", gone)
        if signal.value is not None:
            incident.values[key] = signal.value
        for name, value in signal.labels.items():
            incident.labels.setdefault(name, value)
            if name in AGENT_LABELS:
                if value not in incident.agents:
                    if len(incident.agents) < MAX_AGENTS_PER_INCIDENT:
                        incident.agents.append(value)
                    else:
                        self._evicted("incident_agents", value)
            elif name == "slo":
                _add(incident.slos, value)
            elif name == "budget":
                _add(incident.budgets, value)
        for trace in _traces(signal):
            if len(incident.traces) < MAX_TRACES:
                _add(incident.traces, trace)

    def _resolve_signal(self, signal: Signal, key: str, now: float) -> list[Change]:
        for incident in self.open_incidents():
            if key not in incident.active:
                continue
            incident.active.remove(key)
            incident.signals += 1
            incident.last_signal_at = max(incident.last_signal_at, signal.at)
            if signal.value is not None:
                incident.values[key] = signal.value
            incident.note(now, "resolved_signal", signal.message, **_entry(signal))
            if incident.active:
                return [Change(incident, "signal", signal)]
            return [self._close(incident, now, "signals", "every signal resolved", signal)]
        return []

    def _close(
        self, incident: Incident, now: float, by: str, message: str, signal: Signal | None = None
    ) -> Change:
        incident.state = IncidentState.RESOLVED
        incident.resolved_at = now
        incident.resolved_by = by
        incident.note(now, "resolved", message)
        return Change(incident, "resolved", signal)


def _entry(signal: Signal) -> dict[str, Any]:
    return {
        "type": signal.type,
        "source": signal.source,
        "severity": signal.severity.value,
        "state": signal.state.value,
        "labels": dict(signal.labels),
        "value": signal.value,
        "signal_at": signal.at,
    }


def _traces(signal: Signal) -> list[str]:
    found: list[str] = []
    for where in (signal.labels, signal.details):
        for name in TRACE_KEYS:
            value = where.get(name)
            if isinstance(value, str) and value:
                found.append(value)
            elif isinstance(value, (list, tuple)):
                found.extend(str(v) for v in value if v)
    return found


def _add(values: list[str], value: str) -> None:
    if value not in values:
        values.append(value)


def _number(incident_id: str) -> int:
    try:
        return int(incident_id.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0
