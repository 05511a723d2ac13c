"""Token buckets for per-agent request and token rates.

Buckets are kept per agent id, which clients choose: at most ``MAX_BUCKETS`` are kept
(least recently used out first), and a bucket idle long enough to have refilled is dropped,
which changes nothing (a new bucket starts full).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent_sre.bounded import BoundedMap

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agent_sre.bounded import OnEvict
    from agent_sre.cost.spec import RateLimitSpec

MAX_BUCKETS = 20_000
"""Rate-limit buckets kept (two per agent and rate limit: requests and tokens)."""


@dataclass
class TokenBucket:
    """A bucket of ``capacity`` refilled at ``rate`` per second, starting full."""

    rate: float
    capacity: float
    level: float = -1.0
    updated: float = 0.0

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` could be taken (0 when it can be taken now)."""
        self._refill(now)
        amount = min(amount, self.capacity)
        if self.level >= amount:
            return 0.0
        return (amount - self.level) / self.rate

    def take(self, amount: float, now: float) -> None:
        self._refill(now)
        self.level -= min(amount, self.capacity)

    def _refill(self, now: float) -> None:
        if self.level < 0 and self.updated == 0.0:
            self.level, self.updated = self.capacity, now
            return
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = max(self.updated, now)


class RateLimiter:
    """Per-agent request and token buckets from the ``rate_limits`` specs."""

    def __init__(self, specs: Sequence[RateLimitSpec], on_evict: OnEvict | None = None) -> None:
        self._specs = list(specs)
        # The longest a bucket takes to refill from empty: idle longer, it is full again.
        refill = max(
            (
                max(60.0 / per_minute, spec.burst)
                for spec in self._specs
                for per_minute in (spec.requests_per_minute, spec.tokens_per_minute)
                if per_minute
            ),
            default=0.0,
        )
        self._buckets: BoundedMap[tuple[int, str, str], TokenBucket] = BoundedMap(
            "rate_limit_buckets", MAX_BUCKETS, idle_seconds=refill, on_evict=on_evict
        )

    def check(self, agent_id: str, tokens: int, now: float) -> float:
        """Takes one request and ``tokens`` from every bucket of the agent when all have
        room and returns 0; otherwise takes nothing and returns the seconds to wait."""
        wanted: list[tuple[TokenBucket, float]] = []
        for index, spec in enumerate(self._specs):
            if spec.agents and agent_id not in spec.agents:
                continue
            if spec.requests_per_minute:
                wanted.append(
                    (
                        self._bucket(
                            index,
                            agent_id,
                            "req",
                            spec.requests_per_minute,
                            spec.burst,
                            now,
                        ),
                        1.0,
                    )
                )
            if spec.tokens_per_minute and tokens > 0:
                wanted.append(
                    (
                        self._bucket(
                            index, agent_id, "tok", spec.tokens_per_minute, spec.burst, now
                        ),
                        float(tokens),
                    )
                )
        wait = max((bucket.wait_for(amount, now) for bucket, amount in wanted), default=0.0)
        if wait > 0:
            return wait
        for bucket, amount in wanted:
            bucket.take(amount, now)
        return 0.0

    def __len__(self) -> int:
        return len(self._buckets)

    def _bucket(
        self, index: int, agent_id: str, kind: str, per_minute: float, burst: float, now: float
    ) -> TokenBucket:
        key = (index, agent_id, kind)
        bucket = self._buckets.get(key, now)
        if bucket is None:
            rate = per_minute / 60.0
            bucket = TokenBucket(rate, max(1.0, rate * burst))
            self._buckets.put(key, bucket, now)
        return bucket
