"""The agents this node has seen: a span observer counts them, the summary lists them.

Agent ids come from clients, so the registry is a :class:`~agent_sre.bounded.BoundedMap`
(``fleet_agents``): at most ``max_agents`` agents, least recently seen first out, an agent
silent for :data:`IDLE_SECONDS` forgotten. Versions are kept per agent up to
:data:`~agent_sre.fleet.summary.MAX_VERSIONS` (the most recent).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_sre.bounded import BoundedMap
from agent_sre.fleet.summary import MAX_TEXT, MAX_VERSIONS, AgentRow
from agent_sre.tracing import conventions as c
from agent_sre.tracing.conventions import AgentSpanKind

if TYPE_CHECKING:
    from agent_sre.bounded import OnEvict
    from agent_sre.tracing.view import AgentSpan

IDLE_SECONDS = 7 * 86400.0
"""An agent not seen for this long is forgotten."""
CALL_KINDS = frozenset({AgentSpanKind.LLM_INFERENCE, AgentSpanKind.TOOL_CALL})
WANTED_KEYS = frozenset({c.AGENT_ID, c.AGENT_VERSION, c.AGENT_SRE_COST_USD})
MAX_USD = 1e12
_AMOUNT = (float, int)


class AgentSeen:
    """Mutable counts of one agent on this node."""

    __slots__ = ("versions", "last_seen", "calls", "errors", "cost_usd")

    def __init__(self) -> None:
        self.versions: list[str] = []
        self.last_seen = 0.0
        self.calls = 0
        self.errors = 0
        self.cost_usd = 0.0


class AgentRegistry:
    """Agents seen on this node, bounded (see the module docstring)."""

    def __init__(self, cap: int, on_evict: OnEvict | None = None) -> None:
        self.agents: BoundedMap[str, AgentSeen] = BoundedMap(
            "fleet_agents", cap, idle_seconds=IDLE_SECONDS, on_evict=on_evict
        )

    def observe(self, span: AgentSpan, now: float) -> None:
        """Counts ``span`` for its agent (a span without an agent id is not counted)."""
        # hot path: per span
        agent = span.agent_id
        if agent is None:
            return
        if len(agent) > MAX_TEXT:
            agent = agent[:MAX_TEXT]
        seen = self.agents.get(agent, now)
        if seen is None:
            seen = AgentSeen()
            self.agents.put(agent, seen, now)
        seen.last_seen = now
        attrs = span.attrs
        version = attrs.get(c.AGENT_VERSION)
        if version is not None:
            version = str(version)[:MAX_TEXT]
            versions = seen.versions
            if not versions or versions[-1] != version:
                if version in versions:
                    versions.remove(version)
                versions.append(version)
                if len(versions) > MAX_VERSIONS:
                    del versions[0]
        if span.kind in CALL_KINDS:
            seen.calls += 1
            if span.is_error:
                seen.errors += 1
        cost = attrs.get(c.AGENT_SRE_COST_USD)
        if type(cost) in _AMOUNT and 0.0 < cost < MAX_USD:  # type: ignore[operator]
            seen.cost_usd += cost  # type: ignore[operator]

    def rows(self, now: float) -> tuple[AgentRow, ...]:
        """Every agent still remembered at ``now``, most recently seen first."""
        self.agents.expire(now)
        rows = [
            AgentRow(
                agent,
                tuple(seen.versions),
                seen.last_seen,
                seen.calls,
                seen.errors,
                round(seen.cost_usd, 9),
            )
            for agent, seen in self.agents.items()
        ]
        rows.reverse()
        return tuple(rows)

    def resize(self, cap: int) -> None:
        """Takes a new cap (reload); the least recently seen go when it shrinks."""
        self.agents.cap = cap
        while len(self.agents) > cap:
            oldest = next(iter(self.agents))
            self.agents.pop(oldest)
