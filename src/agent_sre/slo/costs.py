"""The bounded per-trace cost accumulator behind the ``cost_per_task`` SLI."""

from __future__ import annotations

DEFAULT_MAX_TRACES = 10_000


class TraceCosts:
    """Sums ``agent_sre.cost_usd`` of the LLM spans seen per trace, for the task spans after them.

    Holds at most ``max_traces`` traces; adding one more forgets the trace added first, so
    the memory is fixed (about 150 bytes a trace) whatever the traffic. A task whose LLM
    spans were forgotten, or arrive after it, is judged on what was seen before it.
    """

    __slots__ = ("table", "max_traces")

    def __init__(self, max_traces: int = DEFAULT_MAX_TRACES) -> None:
        if max_traces < 1:
            raise ValueError("max_traces must be >= 1")
        self.table: dict[bytes, float] = {}
        """Cost per trace id, oldest first. The engine's hot path updates it inline, with
        exactly the logic of :meth:`add`."""
        self.max_traces = max_traces

    def add(self, trace_id: bytes, cost_usd: float) -> None:
        """Adds ``cost_usd`` to the trace, forgetting the oldest trace when full."""
        table = self.table
        previous = table.get(trace_id)
        if previous is None:
            if len(table) >= self.max_traces:
                del table[next(iter(table))]
            table[trace_id] = cost_usd
        else:
            table[trace_id] = previous + cost_usd

    def cost_of(self, trace_id: bytes) -> float | None:
        """The cost seen so far in the trace, or None when no priced LLM span was seen."""
        return self.table.get(trace_id)

    def __len__(self) -> int:
        return len(self.table)

    def adopt(self, other: TraceCosts) -> None:
        """Takes over the traces of ``other`` (on a configuration reload)."""
        for trace_id, cost in other.table.items():
            self.add(trace_id, cost)
