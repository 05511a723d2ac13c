"""Budget exhaustions heard per agent, for certification: bounded by agents and per agent."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_sre.bounded import BoundedMap
from agent_sre.certification.counting import MAX_ID_LENGTH

if TYPE_CHECKING:
    from agent_sre.bounded import OnEvict
    from agent_sre.certification.evidence import Mark

MAX_MARKS_PER_AGENT = 100


class AgentMarks:
    """Marks per agent id (client-chosen): at most ``max_agents`` agents (the least recently
    marked go first, counted as ``certification_marks``), ``MAX_MARKS_PER_AGENT`` each, and
    none older than ``retention``."""

    def __init__(self, max_agents: int, retention: float, on_evict: OnEvict | None = None):
        self.marks: BoundedMap[str, list[Mark]] = BoundedMap(
            "certification_marks", max_agents, retention, on_evict
        )

    def add(self, agent: str, mark: Mark) -> None:
        kept = self.marks.setdefault(agent[:MAX_ID_LENGTH], list, mark.at)
        kept.append(mark)
        del kept[:-MAX_MARKS_PER_AGENT]

    def of(self, agent: str) -> list[Mark]:
        return list(self.marks.peek(agent) or [])

    def __len__(self) -> int:
        return len(self.marks)
