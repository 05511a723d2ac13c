"""Who makes a proxied call, and the trace it belongs to, from the request headers.

Order of trust: ``X-Agent-*`` headers, then W3C ``baggage`` (``agent.id``, ``agent.task.id``,
``agent.team``, ``agent.version``); the trace from W3C ``traceparent``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

from agent_sre.cost.budgets import CallIdentity

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from agent_sre.replay.redaction import Redactor


@dataclass(frozen=True)
class TraceContext:
    """The caller's W3C trace context and the id of the proxy's own span."""

    trace_id: bytes
    parent_span_id: bytes
    span_id: bytes
    flags: int

    def traceparent(self) -> str:
        """The header for the upstream: our span is its parent."""
        return f"00-{self.trace_id.hex()}-{self.span_id.hex()}-{self.flags:02x}"


def trace_context(headers: Mapping[str, str], random_bytes: Callable[[int], bytes]) -> TraceContext:
    """Parses ``traceparent``; starts a new sampled trace when absent or malformed.

    Args:
        random_bytes: the source of new ids (``os.urandom`` in the daemon).
    """
    value = headers.get("traceparent", "").strip()
    parts = value.split("-")
    span_id = random_bytes(8)
    if len(parts) >= 4 and len(parts[1]) == 32 and len(parts[2]) == 16 and parts[0] != "ff":
        try:
            trace_id, parent, flags = (
                bytes.fromhex(parts[1]),
                bytes.fromhex(parts[2]),
                int(parts[3][:2], 16),
            )
        except ValueError:
            pass
        else:
            if any(trace_id) and any(parent):
                return TraceContext(trace_id, parent, span_id, flags)
    return TraceContext(random_bytes(16), b"", span_id, 1)


def baggage(headers: Mapping[str, str]) -> dict[str, str]:
    """W3C baggage as a dict (properties after ``;`` dropped)."""
    out: dict[str, str] = {}
    for member in headers.get("baggage", "").split(","):
        key, sep, value = member.split(";", 1)[0].partition("=")
        if sep:
            out[key.strip()] = unquote(value.strip())
    return out


def call_identity(headers: Mapping[str, str]) -> CallIdentity:
    """``X-Agent-*`` headers first, then baggage ``agent.id``/``agent.task.id``/``agent.team``."""
    bag = baggage(headers) if "baggage" in headers else {}
    return CallIdentity(
        agent_id=headers.get("x-agent-id") or bag.get("agent.id", ""),
        task_id=headers.get("x-agent-task-id") or bag.get("agent.task.id", ""),
        team=headers.get("x-agent-team") or bag.get("agent.team", ""),
        agent_version=headers.get("x-agent-version") or bag.get("agent.version", ""),
    )


# hot path: per proxied call
def redacted_identity(identity: CallIdentity, redactor: Redactor) -> CallIdentity:
    """``identity`` with a credential in any of its ids redacted: an id a client chose is
    kept in spans, budgets and stores, where no credential may go."""
    fields = (identity.agent_id, identity.task_id, identity.team, identity.agent_version)
    if not any(fields):
        return identity
    if not redactor.finds_recent("\n".join(fields).encode("utf-8", "surrogatepass")):
        return identity
    text = redactor.redact_text
    return CallIdentity(*(text(value) for value in fields))
