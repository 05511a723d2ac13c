"""Recent calls of one target, in fixed time buckets: the "before" of a run and the steady
state's recent error ratio. # hot path: per targeted call; no allocation per call."""

from __future__ import annotations

from agent_sre.chaos.results import Counts

BUCKET = 10.0


class RecentCalls:
    """Calls and failures over the last ``span`` seconds, in ``BUCKET``-second buckets."""

    def __init__(self, span: float) -> None:
        self.size = max(1, int(-(-span // BUCKET)))
        self.calls = [0] * self.size
        self.errors = [0] * self.size
        self.spend = [0.0] * self.size
        self.epochs = [-1] * self.size

    def add(self, now: float, ok: bool, cost: float | None) -> None:
        epoch = int(now // BUCKET)
        slot = epoch % self.size
        if self.epochs[slot] != epoch:
            self.epochs[slot] = epoch
            self.calls[slot] = self.errors[slot] = 0
            self.spend[slot] = 0.0
        self.calls[slot] += 1
        if not ok:
            self.errors[slot] += 1
        if cost:
            self.spend[slot] += cost

    def total(self, now: float) -> Counts:
        """What the buckets of the last ``span`` hold at ``now``."""
        oldest = int(now // BUCKET) - self.size + 1
        out = Counts()
        for slot in range(self.size):
            if self.epochs[slot] >= oldest:
                out.calls += self.calls[slot]
                out.errors += self.errors[slot]
                out.spend_usd += self.spend[slot]
        return out
