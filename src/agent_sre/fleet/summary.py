"""What one node publishes for the fleet, its bounds, and its compact encoding.

A summary is JSON with short positional rows, compressed with zlib and prefixed with
:data:`MAGIC`. Reading one back is a gate (DESIGN.md, Gates): whatever another process wrote
into the shared store — garbage bytes, a zlib bomb, NaN, counts past the numbers gate, wrong
types, an agent list past :data:`MAX_AGENTS` — is refused whole with a
:class:`SummaryError` naming why, and the view skips and counts it.

The SLO part carries each SLO's good/total counts per **hour bucket** over its window (the
hour ring of :mod:`agent_sre.slo.buckets`, all label sets summed, empty hours left out), so
the fleet view adds the nodes' counts over the *same* buckets: the exact rule of
:mod:`agent_sre.fleet.view`.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass, field
from typing import Any

from agent_sre.jsonbody import JsonBodyError, read_json

MAGIC = b"ASF1"
FORMAT = 1

MAX_AGENTS = 10_000
MAX_VERSIONS = 8
"""Versions kept per agent (the most recent)."""
MAX_SLOS = 200
MAX_BUCKETS = 8784
"""Hour buckets per SLO: the longest SLO window (366d)."""
MAX_AGENT_SLOS = 50_000
"""(agent, SLO) rows of SLOs labelled by agent."""
MAX_ROWS = 200
"""Budget, incident, experiment and rollout rows each."""
MAX_TEXT = 256
"""Longest id, name or version."""
MAX_TITLE = 512
MAX_ENCODED_BYTES = 8 * 1024 * 1024
"""Longest compressed summary read from the store."""
MAX_JSON_BYTES = 32 * 1024 * 1024
"""Longest summary once inflated (a zlib bomb stops here)."""
MAX_COUNT = 10**15
"""The numbers gate's bound: larger counts are refused."""

STATUSES = ("healthy", "warning", "critical", "exhausted", "unknown")
HEALTH = ("ok", "degraded")


class SummaryError(ValueError):
    """A summary refused at the gate; the message says why."""


@dataclass(frozen=True, slots=True)
class AgentRow:
    agent: str
    versions: tuple[str, ...]
    last_seen: float
    calls: int
    errors: int
    cost_usd: float


@dataclass(frozen=True, slots=True)
class SLORow:
    name: str
    target: float
    window_s: float
    status: str
    buckets: tuple[tuple[int, int, int], ...]
    """``(hour, good, total)``: hours since the epoch, ascending, non-empty only."""


@dataclass(frozen=True, slots=True)
class AgentSLORow:
    agent: str
    slo: str
    good: int
    total: int


@dataclass(frozen=True, slots=True)
class BudgetRow:
    name: str
    subject: str
    spent_usd: float
    limit_usd: float


@dataclass(frozen=True, slots=True)
class IncidentRow:
    id: str
    severity: str
    title: str
    opened_at: float
    agents: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ExperimentRow:
    name: str
    phase: str


@dataclass(frozen=True, slots=True)
class RolloutRow:
    name: str
    step: int
    weight: float
    phase: str


@dataclass(frozen=True)
class NodeSummary:
    """One node's summary (see the module docstring)."""

    node: str
    version: str
    published_at: float
    health: str = "ok"
    agents: tuple[AgentRow, ...] = ()
    slos: tuple[SLORow, ...] = ()
    agent_slos: tuple[AgentSLORow, ...] = ()
    budgets: tuple[BudgetRow, ...] = ()
    incidents: tuple[IncidentRow, ...] = ()
    experiments: tuple[ExperimentRow, ...] = ()
    rollouts: tuple[RolloutRow, ...] = ()
    dropped: dict[str, int] = field(default_factory=dict)
    """Rows left out to stay within the bounds, by part (``agents``, ``incidents``, ...)."""


# -- encoding ---------------------------------------------------------------------------


def to_data(summary: NodeSummary) -> dict[str, Any]:
    """The summary as compact JSON-able data (positional rows)."""
    return {
        "v": FORMAT,
        "node": summary.node,
        "version": summary.version,
        "at": summary.published_at,
        "health": summary.health,
        "agents": [
            [a.agent, list(a.versions), a.last_seen, a.calls, a.errors, a.cost_usd]
            for a in summary.agents
        ],
        "slos": [
            [s.name, s.target, s.window_s, s.status, [list(b) for b in s.buckets]]
            for s in summary.slos
        ],
        "agent_slos": [[r.agent, r.slo, r.good, r.total] for r in summary.agent_slos],
        "budgets": [[b.name, b.subject, b.spent_usd, b.limit_usd] for b in summary.budgets],
        "incidents": [
            [i.id, i.severity, i.title, i.opened_at, list(i.agents)] for i in summary.incidents
        ],
        "experiments": [[e.name, e.phase] for e in summary.experiments],
        "rollouts": [[r.name, r.step, r.weight, r.phase] for r in summary.rollouts],
        "dropped": dict(summary.dropped),
    }


def encode(summary: NodeSummary) -> bytes:
    """The summary as stored: :data:`MAGIC` + zlib(compact JSON)."""
    text = json.dumps(to_data(summary), separators=(",", ":"), allow_nan=False)
    return MAGIC + zlib.compress(text.encode("utf-8"), 6)


def decode(data: bytes) -> NodeSummary:
    """Reads a stored summary back through the gate.

    Raises:
        SummaryError: not a summary, too large (compressed or inflated), not JSON, a number
            the numbers gate refuses, a field of the wrong type or out of bounds.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SummaryError(f"expected bytes, got {type(data).__name__}")
    raw = bytes(data)
    if len(raw) > MAX_ENCODED_BYTES:
        raise SummaryError(f"longer than {MAX_ENCODED_BYTES} bytes")
    if not raw.startswith(MAGIC):
        raise SummaryError("not a fleet summary (no ASF1 header)")
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(raw[len(MAGIC) :], MAX_JSON_BYTES + 1)
    except zlib.error as exc:
        raise SummaryError(f"not zlib data ({exc})") from None
    if len(text) > MAX_JSON_BYTES or inflater.unconsumed_tail:
        raise SummaryError(f"inflates to more than {MAX_JSON_BYTES} bytes")
    try:
        value = read_json(text, max_depth=6, numbers=True, what="summary")
    except JsonBodyError as exc:
        raise SummaryError(str(exc)) from None
    return from_data(value)


def from_data(value: Any) -> NodeSummary:
    """Validates decoded JSON as a summary (see :func:`decode`)."""
    d = _dict(value, "summary")
    if d.get("v") != FORMAT:
        raise SummaryError(f"v: expected format {FORMAT}, got {_short(d.get('v'))}")
    node = _text(d.get("node"), "node")
    if not node:
        raise SummaryError("node: empty")
    health = _text(d.get("health", "ok"), "health")
    if health not in HEALTH:
        raise SummaryError(f"health: expected one of {', '.join(HEALTH)}")
    agents = tuple(_agent(row, i) for i, row in enumerate(_list(d, "agents", MAX_AGENTS)))
    slos = tuple(_slo(row, i) for i, row in enumerate(_list(d, "slos", MAX_SLOS)))
    if len({s.name for s in slos}) != len(slos):
        raise SummaryError("slos: a name appears twice")
    dropped_raw = _dict(d.get("dropped", {}), "dropped")
    if len(dropped_raw) > 16:
        raise SummaryError("dropped: too many parts")
    dropped = {_text(k, "dropped"): _count(v, f"dropped.{k}") for k, v in dropped_raw.items()}
    return NodeSummary(
        node=node,
        version=_text(d.get("version"), "version"),
        published_at=_time(d.get("at"), "at"),
        health=health,
        agents=agents,
        slos=slos,
        agent_slos=tuple(
            _agent_slo(r, i) for i, r in enumerate(_list(d, "agent_slos", MAX_AGENT_SLOS))
        ),
        budgets=tuple(_budget(r, i) for i, r in enumerate(_list(d, "budgets", MAX_ROWS))),
        incidents=tuple(_incident(r, i) for i, r in enumerate(_list(d, "incidents", MAX_ROWS))),
        experiments=tuple(
            ExperimentRow(_text(r[0], w), _text(r[1], w))
            for i, r in enumerate(_list(d, "experiments", MAX_ROWS))
            if (w := f"experiments[{i}]") and _row(r, 2, w)
        ),
        rollouts=tuple(_rollout(r, i) for i, r in enumerate(_list(d, "rollouts", MAX_ROWS))),
        dropped=dropped,
    )


def _agent(row: Any, i: int) -> AgentRow:
    where = f"agents[{i}]"
    _row(row, 6, where)
    versions = row[1]
    if not isinstance(versions, list) or len(versions) > MAX_VERSIONS:
        raise SummaryError(f"{where}.versions: expected a list of at most {MAX_VERSIONS}")
    calls, errors = _count(row[3], f"{where}.calls"), _count(row[4], f"{where}.errors")
    if errors > calls:
        raise SummaryError(f"{where}: more errors than calls")
    agent = _text(row[0], f"{where}.agent")
    if not agent:
        raise SummaryError(f"{where}.agent: empty")
    return AgentRow(
        agent,
        tuple(_text(v, f"{where}.versions") for v in versions),
        _time(row[2], f"{where}.last_seen"),
        calls,
        errors,
        _usd(row[5], f"{where}.cost_usd"),
    )


def _slo(row: Any, i: int) -> SLORow:
    where = f"slos[{i}]"
    _row(row, 5, where)
    target = _float(row[1], f"{where}.target")
    if not 0.0 < target < 1.0:
        raise SummaryError(f"{where}.target: expected 0 < target < 1")
    window = _float(row[2], f"{where}.window")
    if not 3600.0 <= window <= 366 * 86400.0 or window % 3600:
        raise SummaryError(f"{where}.window: expected whole hours from 1h to 366d")
    status = _text(row[3], f"{where}.status")
    if status not in STATUSES:
        raise SummaryError(f"{where}.status: expected one of {', '.join(STATUSES)}")
    raw = row[4]
    if not isinstance(raw, list) or len(raw) > MAX_BUCKETS:
        raise SummaryError(f"{where}.buckets: expected a list of at most {MAX_BUCKETS}")
    buckets = []
    last = -1
    for j, bucket in enumerate(raw):
        at = f"{where}.buckets[{j}]"
        _row(bucket, 3, at)
        hour, good, total = (_count(v, at) for v in bucket)
        if good > total:
            raise SummaryError(f"{at}: good > total")
        if hour <= last:
            raise SummaryError(f"{at}: hours must ascend")
        last = hour
        buckets.append((hour, good, total))
    return SLORow(_text(row[0], f"{where}.name"), target, window, status, tuple(buckets))


def _agent_slo(row: Any, i: int) -> AgentSLORow:
    where = f"agent_slos[{i}]"
    _row(row, 4, where)
    good, total = _count(row[2], where), _count(row[3], where)
    if good > total:
        raise SummaryError(f"{where}: good > total")
    return AgentSLORow(_text(row[0], where), _text(row[1], where), good, total)


def _budget(row: Any, i: int) -> BudgetRow:
    where = f"budgets[{i}]"
    _row(row, 4, where)
    return BudgetRow(
        _text(row[0], where), _text(row[1], where), _usd(row[2], where), _usd(row[3], where)
    )


def _incident(row: Any, i: int) -> IncidentRow:
    where = f"incidents[{i}]"
    _row(row, 5, where)
    agents = row[4]
    if not isinstance(agents, list) or len(agents) > MAX_ROWS:
        raise SummaryError(f"{where}.agents: expected a list of at most {MAX_ROWS}")
    return IncidentRow(
        _text(row[0], where),
        _text(row[1], where),
        _text(row[2], where, MAX_TITLE),
        _time(row[3], where),
        tuple(_text(a, where) for a in agents),
    )


def _rollout(row: Any, i: int) -> RolloutRow:
    where = f"rollouts[{i}]"
    _row(row, 4, where)
    weight = _float(row[2], f"{where}.weight")
    if not 0.0 <= weight <= 100.0:
        raise SummaryError(f"{where}.weight: expected 0 to 100")
    return RolloutRow(
        _text(row[0], where), _count(row[1], f"{where}.step"), weight, _text(row[3], where)
    )


# -- field gates ------------------------------------------------------------------------


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SummaryError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _list(d: dict[str, Any], key: str, most: int) -> list[Any]:
    value = d.get(key, [])
    if not isinstance(value, list):
        raise SummaryError(f"{key}: expected a list, got {type(value).__name__}")
    if len(value) > most:
        raise SummaryError(f"{key}: {len(value)} rows, more than {most}")
    return value


def _row(value: Any, size: int, where: str) -> bool:
    if not isinstance(value, list) or len(value) != size:
        raise SummaryError(f"{where}: expected a row of {size} values")
    return True


def _text(value: Any, where: str, most: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise SummaryError(f"{where}: expected a string, got {type(value).__name__}")
    if len(value) > most:
        raise SummaryError(f"{where}: longer than {most} characters")
    return value


def _count(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_COUNT:
        raise SummaryError(f"{where}: expected a whole number from 0 to {MAX_COUNT:g}")
    return value


def _float(value: Any, where: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise SummaryError(f"{where}: expected a finite number, got {_short(value)}")
    return float(value)


def _usd(value: Any, where: str) -> float:
    amount = _float(value, where)
    if amount < 0:
        raise SummaryError(f"{where}: negative")
    return amount


def _time(value: Any, where: str) -> float:
    at = _float(value, where)
    if not 0 <= at <= 32503680000.0:  # year 3000
        raise SummaryError(f"{where}: not a time")
    return at
