"""The fleet view: the nodes' summaries at one time, added up exactly.

**The exact rule.** Fleet-wide, an SLO's good and total over its window are the sums of
every counted node's good and total over the *same* hour buckets: the buckets whose hour
lies in ``(hour(now) - window_hours, hour(now)]``. Attainment is ``sum(good) / sum(total)``
(never an average of the nodes' ratios), and the error budget left is
``1 - (bad / total) / (1 - target)`` of those sums. A node counts while its last summary is
younger than the TTL (``up`` within two publish intervals, ``stale`` after); older, it drops
out and stops counting, and ``covers`` says how many nodes the answer is made of. Nodes that
configure an SLO of the same name with another target or window are not added (``mismatched``
names them); the (target, window) most nodes have wins.

The status of a fleet-wide SLO is ``exhausted`` when the summed budget is spent, else the
worst burn-rate status among the counted nodes (``warning``, ``critical``; a node's own
exhaustion alone does not make the fleet's), and ``unknown`` with no event in the window.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from agent_sre.fleet.summary import MAX_VERSIONS
from agent_sre.slo.budget import budget_remaining
from agent_sre.units import format_duration

if TYPE_CHECKING:
    from collections.abc import Iterable

    from agent_sre.fleet.summary import AgentRow, NodeSummary, SLORow

HOUR = 3600
_RANK = {"healthy": 0, "warning": 1, "critical": 2}
_BY_RANK = {rank: status for status, rank in _RANK.items()}


def rfc3339(at: float | None) -> str | None:
    """``2026-12-07T06:00:00Z`` (milliseconds when not whole seconds); None stays None."""
    if at is None:
        return None
    moment = datetime.fromtimestamp(at, tz=timezone.utc)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class NodeState:
    summary: NodeSummary
    state: str
    """``up`` or ``stale``."""
    age_seconds: float

    def to_dict(self) -> dict[str, Any]:
        s = self.summary
        return {
            "node": s.node,
            "version": s.version,
            "state": self.state,
            "last_seen": rfc3339(s.published_at),
            "age_seconds": round(self.age_seconds, 3),
            "health": s.health,
            "agents": len(s.agents),
            "slos": len(s.slos),
            "open_incidents": len(s.incidents),
            "experiments": len(s.experiments),
            "rollouts": len(s.rollouts),
            "dropped": dict(s.dropped),
        }


@dataclass
class AgentAcross:
    """One agent over every node that saw it."""

    agent: str
    rows: list[tuple[str, AgentRow]] = field(default_factory=list)
    """``(node, row)`` per node."""

    @property
    def last_seen(self) -> float:
        return max(row.last_seen for _, row in self.rows)

    def versions(self) -> list[str]:
        seen: dict[str, float] = {}
        for _, row in self.rows:
            for version in row.versions:
                seen[version] = max(seen.get(version, 0.0), row.last_seen)
        newest = sorted(seen, key=lambda v: (-seen[v], v))[:MAX_VERSIONS]
        return sorted(newest)

    def to_dict(self) -> dict[str, Any]:
        rows = [row for _, row in self.rows]
        return {
            "agent": self.agent,
            "versions": self.versions(),
            "nodes": sorted(node for node, _ in self.rows),
            "last_seen": rfc3339(self.last_seen),
            "calls": sum(r.calls for r in rows),
            "errors": sum(r.errors for r in rows),
            "cost_usd": round(sum(r.cost_usd for r in rows), 9),
        }


@dataclass
class FleetView:
    """The fleet at :attr:`generated_at` (build it with :func:`build_view`)."""

    generated_at: float
    ttl: float
    nodes: list[NodeState]
    expired: list[str]
    """Nodes whose last summary is older than the TTL (dropped out, not counted)."""
    slos: list[dict[str, Any]]
    agents: list[AgentAcross]
    agents_dropped: int
    budgets: list[dict[str, Any]]
    incidents: list[dict[str, Any]]
    experiments: list[dict[str, Any]]
    rollouts: list[dict[str, Any]]
    _index: dict[str, AgentAcross] = field(default_factory=dict)
    _slo_specs: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def covers(self) -> dict[str, int]:
        up = sum(1 for n in self.nodes if n.state == "up")
        return {"nodes": len(self.nodes), "up": up, "stale": len(self.nodes) - up}

    @property
    def version_skew(self) -> bool:
        return len({n.summary.version for n in self.nodes}) > 1

    def to_dict(self, first_page: int = 100) -> dict[str, Any]:
        """The answer of ``GET /v1/fleet`` (the shell adds ``scope``, ``store``, links)."""
        return {
            "ttl_seconds": self.ttl,
            "generated_at": rfc3339(self.generated_at),
            "covers": self.covers,
            "expired": sorted(self.expired),
            "version_skew": self.version_skew,
            "versions": sorted({n.summary.version for n in self.nodes}),
            "nodes": [n.to_dict() for n in self.nodes],
            "slos": self.slos,
            "agents": {
                "total": len(self.agents),
                "dropped": self.agents_dropped,
                "items": [a.to_dict() for a in self.agents[:first_page]],
            },
            "budgets": self.budgets,
            "incidents": self.incidents,
            "experiments": self.experiments,
            "rollouts": self.rollouts,
        }

    def agents_page(self, q: str = "", limit: int = 100, offset: int = 0) -> dict[str, Any]:
        """``GET /v1/fleet/agents``: agents whose id holds ``q`` (any case), by id."""
        found = self.agents
        if q:
            needle = q.casefold()
            found = [a for a in found if needle in a.agent.casefold()]
        return {
            "total": len(found),
            "offset": offset,
            "limit": limit,
            "q": q,
            "items": [a.to_dict() for a in found[offset : offset + limit]],
        }

    def agent(self, agent: str) -> dict[str, Any] | None:
        """``GET /v1/fleet/agents/{agent}``; None when no counted node saw it."""
        found = self._index.get(agent)
        if found is None:
            return None
        whole = found.to_dict()
        counts: dict[str, list[int]] = {}
        nodes_of: dict[str, int] = {}
        for state in self.nodes:
            for row in state.summary.agent_slos:
                if row.agent == agent:
                    pair = counts.setdefault(row.slo, [0, 0])
                    pair[0] += row.good
                    pair[1] += row.total
                    nodes_of[row.slo] = nodes_of.get(row.slo, 0) + 1
        slos = []
        for name, (good, total) in sorted(counts.items()):
            target, window = self._slo_specs.get(name, (None, None))
            slos.append(_slo_entry(name, target, window, good, total, None, nodes_of[name]))
        return {
            "agent": agent,
            "nodes": [
                {
                    "node": node,
                    "versions": list(row.versions),
                    "last_seen": rfc3339(row.last_seen),
                    "calls": row.calls,
                    "errors": row.errors,
                    "cost_usd": row.cost_usd,
                }
                for node, row in sorted(found.rows, key=lambda pair: pair[0])
            ],
            "versions": whole["versions"],
            "calls": whole["calls"],
            "errors": whole["errors"],
            "slos": slos,
            "spend_usd": whole["cost_usd"],
            "incidents": [i for i in self.incidents if agent in i.get("agents", ())],
            "certification": None,
        }


def build_view(
    summaries: Iterable[NodeSummary],
    now: float,
    ttl: float,
    stale_after: float,
    max_agents: int = 10_000,
) -> FleetView:
    """The fleet at ``now`` from the nodes' latest summaries (one per node name: the newest
    wins); a summary older than ``ttl`` drops out, one older than ``stale_after`` is
    ``stale`` but still counts."""
    latest: dict[str, NodeSummary] = {}
    for summary in summaries:
        known = latest.get(summary.node)
        if known is None or summary.published_at > known.published_at:
            latest[summary.node] = summary
    nodes: list[NodeState] = []
    expired: list[str] = []
    for name in sorted(latest):
        summary = latest[name]
        age = max(0.0, now - summary.published_at)
        if age > ttl:
            expired.append(name)
            continue
        nodes.append(NodeState(summary, "up" if age <= stale_after else "stale", age))
    slos, specs = _slos(nodes, now)
    agents, dropped = _agents(nodes, max_agents)
    view = FleetView(
        generated_at=now,
        ttl=ttl,
        nodes=nodes,
        expired=expired,
        slos=slos,
        agents=agents,
        agents_dropped=dropped,
        budgets=[
            {
                "name": b.name,
                "node": n.summary.node,
                "subject": b.subject,
                "spent_usd": b.spent_usd,
                "limit_usd": b.limit_usd,
                "used": round(b.spent_usd / b.limit_usd, 6) if b.limit_usd > 0 else None,
            }
            for n in nodes
            for b in n.summary.budgets
        ],
        incidents=sorted(
            (
                {
                    "id": i.id,
                    "node": n.summary.node,
                    "severity": i.severity,
                    "title": i.title,
                    "opened_at": rfc3339(i.opened_at),
                    "agents": list(i.agents),
                }
                for n in nodes
                for i in n.summary.incidents
            ),
            key=lambda i: (str(i["opened_at"]), i["node"], i["id"]),
            reverse=True,
        ),
        experiments=[
            {"name": e.name, "node": n.summary.node, "phase": e.phase}
            for n in nodes
            for e in n.summary.experiments
        ],
        rollouts=[
            {
                "name": r.name,
                "node": n.summary.node,
                "step": r.step,
                "weight": r.weight,
                "phase": r.phase,
            }
            for n in nodes
            for r in n.summary.rollouts
        ],
        _index={a.agent: a for a in agents},
        _slo_specs=specs,
    )
    return view


def window_counts(row: SLORow, now: float) -> tuple[int, int]:
    """A node's ``(good, total)`` over the SLO window ending in the hour holding ``now``."""
    hour = int(now // HOUR)
    first = hour - int(row.window_s // HOUR)
    good = total = 0
    for at, g, t in row.buckets:
        if first < at <= hour:
            good += g
            total += t
    return good, total


def _slos(
    nodes: list[NodeState], now: float
) -> tuple[list[dict[str, Any]], dict[str, tuple[float, float]]]:
    by_name: dict[str, list[tuple[str, SLORow]]] = {}
    for state in nodes:
        for row in state.summary.slos:
            by_name.setdefault(row.name, []).append((state.summary.node, row))
    out = []
    specs: dict[str, tuple[float, float]] = {}
    for name in sorted(by_name):
        rows = by_name[name]
        votes = Counter((row.target, row.window_s) for _, row in rows)
        (target, window), _ = max(votes.items(), key=lambda item: (item[1], item[0]))
        specs[name] = (target, window)
        good = total = 0
        counted = 0
        worst = 0
        mismatched = []
        for node, row in rows:
            if (row.target, row.window_s) != (target, window):
                mismatched.append(node)
                continue
            g, t = window_counts(row, now)
            good += g
            total += t
            counted += 1
            worst = max(worst, _RANK.get(row.status, 0))
        entry = _slo_entry(name, target, window, good, total, _BY_RANK[worst], counted)
        entry["mismatched"] = sorted(mismatched)
        out.append(entry)
    return out, specs


def _slo_entry(
    name: str,
    target: float | None,
    window: float | None,
    good: int,
    total: int,
    burn_status: str | None,
    nodes: int,
) -> dict[str, Any]:
    remaining = (
        budget_remaining(good, total, _error_budget(target))
        if target is not None and total
        else None
    )
    if not total:
        status = "unknown"
    elif remaining is not None and remaining <= 0:
        status = "exhausted"
    else:
        status = burn_status or "healthy"
    return {
        "name": name,
        "target": target,
        "window": format_duration(window) if window is not None else None,
        "good": good,
        "total": total,
        "attainment": good / total if total else None,
        "error_budget_remaining": remaining if total else (1.0 if target is not None else None),
        "status": status,
        "nodes": nodes,
    }


def _error_budget(target: float) -> float:
    """``1 - target`` in decimal, as :attr:`agent_sre.slo.spec.SLOSpec.error_budget` and the
    generated rules have it (0.99 gives exactly 0.01)."""
    return float(Decimal(1) - Decimal(repr(target)))


def _agents(nodes: list[NodeState], max_agents: int) -> tuple[list[AgentAcross], int]:
    index: dict[str, AgentAcross] = {}
    for state in nodes:
        node = state.summary.node
        for row in state.summary.agents:
            found = index.get(row.agent)
            if found is None:
                found = index[row.agent] = AgentAcross(row.agent)
            found.rows.append((node, row))
    dropped = 0
    if len(index) > max_agents:
        keep = sorted(index.values(), key=lambda a: -a.last_seen)[:max_agents]
        dropped = len(index) - max_agents
        index = {a.agent: a for a in keep}
    return [index[name] for name in sorted(index)], dropped
