"""Which of the other engines' records concern one agent version.

The chaos engine keeps runs per experiment, the incidents engine incidents naming agents,
the budgets signal exhaustions per agent, and rollouts name a candidate version: none of
them is kept per agent version. Attribution, stated once here:

- a chaos run concerns a version when the experiment's targets do not rule the agent or the
  version out (``targets.agents`` / ``targets.agent_versions``, ``*`` prefixes) and the
  version sent spans while its faults ran (a bucket overlapping the run);
- an incident concerns a version when it names the agent and the version sent spans while
  the incident was open; when no version of the agent did, it concerns every version (an
  incident is never lost for want of spans);
- a budget exhaustion (of the agent) likewise, at its time;
- a rollout concerns a version when it varies ``agent_version`` with that version as its
  candidate, and names the agent (``agent``) or no agent.

Pure: every function takes plain values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent_sre.certification.evidence import ChaosRun, IncidentRecord, Mark, RolloutRecord

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    Seen = Callable[[float, float], bool]
    """Whether the version (or, for ``any_seen``, any version of the agent) sent spans
    in a bucket overlapping ``[start, end]``."""

ENDED_ROLLOUT = frozenset({"promoted", "rolled_back", "aborted"})


def listed(values: Sequence[str], value: str) -> bool:
    """``value`` is allowed by a target list (empty: anything; ``x*``: a prefix)."""
    if not values:
        return True
    return any(
        value.startswith(wanted[:-1]) if wanted.endswith("*") else wanted == value
        for wanted in values
    )


def chaos_runs_for(
    agent: str, version: str, runs: Iterable[Mapping[str, Any]], seen: Seen, now: float
) -> list[ChaosRun]:
    """The runs (chaos run records, as ``GET /v1/chaos/runs`` gives them) that concern the
    version. A record without ``targets`` (written before runs kept them) concerns none."""
    out = []
    for run in runs:
        targets = run.get("targets")
        if not isinstance(targets, dict):
            continue
        agents = [str(a) for a in targets.get("agents") or []]
        versions = [str(v) for v in targets.get("agent_versions") or []]
        if not listed(agents, agent) or not listed(versions, version):
            continue
        try:
            started = float(run["started_at"])
            stopped = run.get("faults_stopped_at") or run.get("ended_at")
            end = float(stopped) if stopped is not None else now
            if not seen(started, end):
                continue
            score = run.get("resilience_score")
            ended = run.get("ended_at")
            out.append(
                ChaosRun(
                    id=str(run["id"]),
                    experiment=str(run.get("experiment", "")),
                    state=str(run.get("state", "")),
                    started_at=started,
                    ended_at=None if ended is None else float(ended),
                    score=None if score is None else float(score),
                    faults={str(k): int(v) for k, v in (run.get("faults_injected") or {}).items()},
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return out


def incidents_for(
    agent: str,
    incidents: Iterable[Mapping[str, Any]],
    seen: Seen,
    any_seen: Seen,
    now: float,
) -> list[IncidentRecord]:
    """The incidents (``Incident.to_dict()`` records) that concern the version."""
    out = []
    for incident in incidents:
        if agent not in (incident.get("agents") or ()):
            continue
        try:
            opened = float(incident["opened_at"])
            resolved = incident.get("resolved_at")
            end = float(resolved) if resolved is not None else now
            if not seen(opened, end) and any_seen(opened, end):
                continue  # another version of the agent ran then
            out.append(
                IncidentRecord(
                    id=str(incident["id"]),
                    severity=str(incident.get("severity", "critical")),
                    opened_at=opened,
                    resolved_at=None if resolved is None else float(resolved),
                    title=str(incident.get("title", ""))[:200],
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return out


def marks_for(marks: Iterable[Mark], seen: Seen, any_seen: Seen) -> list[Mark]:
    """The agent's marks (budget exhaustions) that concern the version."""
    return [m for m in marks if seen(m.at, m.at) or not any_seen(m.at, m.at)]


def rollouts_for(
    agent: str, version: str, rollouts: Iterable[Mapping[str, Any]]
) -> list[RolloutRecord]:
    """Outcomes of the rollouts whose candidate is the version: records of ``name``,
    ``vary``, ``candidate``, ``agent`` (may be empty), ``outcome`` and ``at``; the same
    rollout and outcome at the same time counts once."""
    out: dict[tuple[str, str, float], RolloutRecord] = {}
    for rollout in rollouts:
        if rollout.get("vary") != "agent_version" or str(rollout.get("candidate")) != version:
            continue
        named = str(rollout.get("agent") or "")
        if named and named != agent:
            continue
        try:
            record = RolloutRecord(
                str(rollout["name"]), str(rollout["outcome"]), float(rollout["at"])
            )
        except (KeyError, TypeError, ValueError):
            continue
        out[(record.name, record.outcome, record.at)] = record
    return sorted(out.values(), key=lambda r: (r.at, r.name))
