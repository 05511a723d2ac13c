"""A postmortem draft in Markdown from an incident: what the daemon knows filled in, the
cause and the follow-ups left for people."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from agent_sre.units import format_duration

if TYPE_CHECKING:
    from agent_sre.incidents.model import Incident


def _when(at: float | None) -> str:
    if at is None:
        return "-"
    return datetime.fromtimestamp(at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def postmortem(incident: Incident, now: float) -> str:
    lines = [
        f"# Postmortem: {incident.id} — {incident.title}",
        "",
        "## Summary",
        "",
        f"- Severity: {incident.severity.value}",
        f"- State: {incident.state.value}"
        + (f" (resolved by {incident.resolved_by})" if incident.resolved_by else ""),
        f"- Opened: {_when(incident.opened_at)}",
        f"- Acknowledged: {_when(incident.acknowledged_at)}",
        f"- Resolved: {_when(incident.resolved_at)}",
        f"- Duration: {format_duration(round(incident.duration(now)))}",
        f"- Signals: {incident.signals} ({incident.source}/{incident.type} opened it)",
        "",
        "## Impact",
        "",
    ]
    impact = []
    if incident.slos:
        impact.append(f"- SLOs affected: {', '.join(incident.slos)}")
    budget_left = [
        f"{key}: {value * 100:.1f}% of the error budget left"
        for key, value in incident.values.items()
        if key.startswith("slo/")
    ]
    impact.extend(f"  - {line}" for line in budget_left)
    if incident.budgets:
        impact.append(f"- Cost budgets involved: {', '.join(incident.budgets)}")
    spend = [
        f"  - {key}: ${value:.4f}"
        for key, value in incident.values.items()
        if key.startswith("budgets/")
    ]
    impact.extend(spend)
    if incident.agents:
        impact.append(f"- Agents: {', '.join(incident.agents)}")
    failed = sum(
        1
        for entry in incident.timeline
        if entry.kind == "signal" and entry.details.get("type") in ("circuit_state",)
    )
    if failed:
        impact.append(f"- Circuit openings: {failed}")
    lines.extend(impact or ["- (nothing measured; describe the impact)"])
    lines += ["", "## Timeline", "", "| at (UTC) | what | details |", "|---|---|---|"]
    for entry in incident.timeline:
        message = entry.message.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {_when(entry.at)} | {entry.kind} | {message} |")
    lines += ["", "## Traces involved", ""]
    lines.extend(f"- `{trace}`" for trace in incident.traces) if incident.traces else lines.append(
        "- none recorded"
    )
    lines += ["", "## Actions taken", ""]
    actions = [e for e in incident.timeline if e.kind == "action"]
    lines.extend(f"- {_when(e.at)}: {e.message}" for e in actions) if actions else lines.append(
        "- none"
    )
    lines += [
        "",
        "## Cause",
        "",
        "_To fill in: what happened, and why._",
        "",
        "## Follow-ups",
        "",
        "- [ ] _To fill in._",
        "",
    ]
    return "\n".join(lines)
