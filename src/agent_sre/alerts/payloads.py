"""What each receiver is sent about an incident, in its documented shape.

- Alertmanager v2: ``POST /api/v2/alerts`` with ``[{labels, annotations, startsAt, endsAt,
  generatorURL}]``; firing alerts are re-sent with ``endsAt`` ahead, a resolved one with
  ``endsAt`` at its resolution.
- Generic webhook: the incident as JSON, signed (:func:`sign_webhook`).
- PagerDuty Events v2: ``trigger`` / ``acknowledge`` / ``resolve`` with a stable
  ``dedup_key``.
- Slack incoming webhook: ``text`` and ``blocks``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from agent_sre.incidents.model import IncidentState
from agent_sre.signals import Severity

if TYPE_CHECKING:
    from agent_sre.incidents.model import Incident

SIGNATURE_HEADER = "X-Agent-SRE-Signature"
TIMESTAMP_HEADER = "X-Agent-SRE-Timestamp"
ALERTMANAGER_ENDS_AHEAD = 4
"""A firing alert's ``endsAt`` is this many re-send intervals ahead, so a daemon that
stops re-sending lets it lapse instead of firing forever."""

_PD_SEVERITY = {Severity.INFO: "info", Severity.WARNING: "warning", Severity.CRITICAL: "critical"}
_SLACK_ICON = {Severity.INFO: ":information_source:", Severity.WARNING: ":warning:",
               Severity.CRITICAL: ":rotating_light:"}  # fmt: skip
_NAME = re.compile(r"[^A-Za-z0-9_]")


def rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, tz=timezone.utc).isoformat(timespec="milliseconds")


def incident_url(external_url: str, incident: Incident) -> str:
    return f"{external_url.rstrip('/')}/v1/incidents/{incident.id}" if external_url else ""


def alertname(incident: Incident) -> str:
    """``AgentSRE`` and the opening signal's type in CamelCase: ``AgentSRESloStatus``."""
    words = _NAME.sub("_", incident.type).split("_")
    return "AgentSRE" + "".join(w[:1].upper() + w[1:] for w in words if w)


def alertmanager_labels(incident: Incident, node: str, severity: Severity) -> dict[str, str]:
    labels = {
        "alertname": alertname(incident),
        "severity": severity.value,
        "node": node,
        "incident": incident.id,
        "source": incident.source,
    }
    if incident.agents:
        labels["agent"] = ",".join(incident.agents)
    if incident.slos:
        labels["slo"] = ",".join(incident.slos)
    if incident.budgets:
        labels["budget"] = ",".join(incident.budgets)
    return labels


def alertmanager_alert(
    incident: Incident,
    node: str,
    now: float,
    resend_interval: float,
    external_url: str = "",
    severity: Severity | None = None,
    ended: bool = False,
) -> dict[str, Any]:
    """One alert for ``incident`` (``severity`` overrides its own, to end the alert sent
    before an escalation changed the label; ``ended`` ends it now)."""
    resolved = ended or incident.state is IncidentState.RESOLVED
    ends = (
        (incident.resolved_at or now)
        if resolved
        else now + ALERTMANAGER_ENDS_AHEAD * (resend_interval)
    )
    annotations = {
        "summary": incident.title,
        "description": (
            f"incident {incident.id} ({incident.state.value}), {incident.signals} signals"
            + (f"; agents: {', '.join(incident.agents)}" if incident.agents else "")
            + (f"; SLOs: {', '.join(incident.slos)}" if incident.slos else "")
        ),
    }
    url = incident_url(external_url, incident)
    if url:
        annotations["incident_url"] = url
    if incident.traces:
        annotations["traces"] = " ".join(incident.traces[:10])
    return {
        "labels": alertmanager_labels(incident, node, severity or incident.severity),
        "annotations": annotations,
        "startsAt": rfc3339(incident.opened_at),
        "endsAt": rfc3339(ends),
        "generatorURL": url,
    }


def webhook_body(incident: Incident, event: str, node: str, external_url: str) -> dict[str, Any]:
    data = incident.to_dict()
    data["timeline"] = data["timeline"][-50:]
    return {
        "version": "1",
        "event": event,
        "node": node,
        "url": incident_url(external_url, incident),
        "incident": data,
    }


def sign_webhook(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Headers proving the body came from us at ``timestamp``: HMAC-SHA256 of
    ``"<timestamp>.<body>"`` with the shared secret (a receiver rejects old timestamps,
    so a captured request cannot be replayed later)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: f"sha256={mac.hexdigest()}"}


def verify_webhook(
    secret: str, headers: dict[str, str], body: bytes, now: float, tolerance: float = 300.0
) -> bool:
    """What a receiver checks (used by our tests; documented for users)."""
    try:
        timestamp = int(headers[TIMESTAMP_HEADER])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign_webhook(secret, timestamp, body)[SIGNATURE_HEADER]
    return hmac.compare_digest(expected, headers.get(SIGNATURE_HEADER, ""))


def pagerduty_dedup_key(incident: Incident, node: str) -> str:
    return f"agent-sre/{node}/{incident.id}"


def pagerduty_event(
    incident: Incident, event: str, node: str, routing_key: str, external_url: str
) -> dict[str, Any]:
    """``trigger`` while open, ``acknowledge`` once acknowledged, ``resolve`` at the end."""
    action = {"acknowledged": "acknowledge", "resolved": "resolve"}.get(event, "trigger")
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": pagerduty_dedup_key(incident, node),
    }
    if action != "trigger":
        return body
    body["payload"] = {
        "summary": incident.title[:1024],
        "source": node,
        "severity": _PD_SEVERITY[incident.severity],
        "timestamp": rfc3339(incident.opened_at),
        "component": ",".join(incident.agents) or incident.source,
        "group": ",".join(incident.slos) or incident.source,
        "class": incident.type,
        "custom_details": {
            "incident": incident.id,
            "labels": dict(incident.labels),
            "signals": incident.signals,
            "traces": incident.traces[:20],
        },
    }
    url = incident_url(external_url, incident)
    if url:
        body["links"] = [{"href": url, "text": f"incident {incident.id}"}]
    return body


def slack_message(incident: Incident, event: str, node: str, external_url: str) -> dict[str, Any]:
    icon = ":white_check_mark:" if event == "resolved" else _SLACK_ICON[incident.severity]
    headline = f"{icon} [{event}] {incident.id} ({incident.severity.value}) on {node}"
    url = incident_url(external_url, incident)
    facts = [f"*{incident.title}*"]
    if incident.agents:
        facts.append(f"agents: {', '.join(incident.agents)}")
    if incident.slos:
        facts.append(f"SLOs: {', '.join(incident.slos)}")
    if url:
        facts.append(f"<{url}|open the incident>")
    return {
        "text": f"{headline}: {incident.title}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": headline[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(facts)[:3000]}},
        ],
    }
