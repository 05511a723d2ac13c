"""One incident: what it is about, its state, and its timeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from agent_sre.signals import Severity

MAX_TIMELINE = 500
"""Entries kept per incident; repeats of a signal only bump its count."""
MAX_TRACES = 100


class IncidentState(str, Enum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


@dataclass
class TimelineEntry:
    """Something that happened to an incident: ``kind`` is ``signal``, ``resolved_signal``,
    ``escalated``, ``action``, ``acknowledged``, ``resolved`` or ``reopened``."""

    at: float
    kind: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "kind": self.kind, "message": self.message, "details": self.details}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TimelineEntry:
        return cls(data["at"], data["kind"], data["message"], dict(data.get("details") or {}))


@dataclass
class Incident:
    """A group of correlated signals that people and automatic responses act on.

    Attributes:
        id: ``inc-<n>``, stable for its life (PagerDuty dedup keys, Alertmanager labels).
        group: the correlation key signals join it by.
        title: the first signal's message.
        type, source: of the signal that opened it.
        active: keys of the signals still firing (a resolvable signal removes its key).
        labels: every label seen, first value kept (``slo``, ``agent_id``, ``budget``...).
        agents, slos, budgets, traces: what it touches (trace ids are usable with replay).
        signals: signals received, repeats included.
        last_signal_at: when the latest one arrived.
        values: the last value of each signal key (a burn rate, budget left, dollars).
    """

    id: str
    group: str
    title: str
    type: str
    source: str
    severity: Severity
    opened_at: float
    state: IncidentState = IncidentState.OPEN
    last_signal_at: float = 0.0
    acknowledged_at: float | None = None
    resolved_at: float | None = None
    resolved_by: str = ""
    active: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    agents: list[str] = field(default_factory=list)
    slos: list[str] = field(default_factory=list)
    budgets: list[str] = field(default_factory=list)
    traces: list[str] = field(default_factory=list)
    signals: int = 0
    values: dict[str, float] = field(default_factory=dict)
    timeline: list[TimelineEntry] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.state is not IncidentState.RESOLVED

    def note(self, at: float, kind: str, message: str, **details: Any) -> TimelineEntry:
        entry = TimelineEntry(at, kind, message, details)
        self.timeline.append(entry)
        if len(self.timeline) > MAX_TIMELINE:
            # keep the opening entries: they say how it began
            del self.timeline[10]
        return entry

    def duration(self, now: float) -> float:
        end = self.resolved_at if self.resolved_at is not None else now
        return max(0.0, end - self.opened_at)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "group": self.group,
            "title": self.title,
            "type": self.type,
            "source": self.source,
            "severity": self.severity.value,
            "state": self.state.value,
            "opened_at": self.opened_at,
            "last_signal_at": self.last_signal_at,
            "acknowledged_at": self.acknowledged_at,
            "resolved_at": self.resolved_at,
            "resolved_by": self.resolved_by,
            "active": list(self.active),
            "labels": dict(self.labels),
            "agents": list(self.agents),
            "slos": list(self.slos),
            "budgets": list(self.budgets),
            "traces": list(self.traces),
            "signals": self.signals,
            "values": dict(self.values),
            "timeline": [entry.to_dict() for entry in self.timeline],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Incident:
        return cls(
            id=data["id"],
            group=data["group"],
            title=data["title"],
            type=data["type"],
            source=data["source"],
            severity=Severity(data["severity"]),
            opened_at=float(data["opened_at"]),
            state=IncidentState(data["state"]),
            last_signal_at=float(data.get("last_signal_at") or data["opened_at"]),
            acknowledged_at=data.get("acknowledged_at"),
            resolved_at=data.get("resolved_at"),
            resolved_by=data.get("resolved_by", ""),
            active=list(data.get("active", [])),
            labels=dict(data.get("labels", {})),
            agents=list(data.get("agents", [])),
            slos=list(data.get("slos", [])),
            budgets=list(data.get("budgets", [])),
            traces=list(data.get("traces", [])),
            signals=int(data.get("signals", 0)),
            values={k: float(v) for k, v in (data.get("values") or {}).items()},
            timeline=[TimelineEntry.from_dict(e) for e in data.get("timeline", [])],
        )
