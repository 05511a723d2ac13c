"""A map keyed by values clients send (agent ids, task ids), bounded by configuration.

Every engine that keeps state per client-chosen key keeps it in a :class:`BoundedMap`: at
most ``cap`` entries, least recently used first out, and entries idle longer than
``idle_seconds`` dropped as time passes. Evictions are counted (``evictions``) and reported
to ``on_evict(name, key)`` so the daemon can export them; a client inventing ids can then cost an
entry's worth of memory per id up to the cap, never more.

Pure: time comes in as ``now``; nothing here reads a clock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Iterator

K = TypeVar("K")
V = TypeVar("V")

OnEvict = Callable[[str, Any], None]
"""What the daemon hands an engine to hear of evictions: (map name, evicted key)."""

REGISTRY: dict[str, str] = {
    "ledger_counters": "cost ledger: spend counters per budget subject (agent, task, team)",
    "pacing": "cost guard: spend rate per agent (auto-throttle)",
    "rate_limit_buckets": "cost guard: a token bucket per rate limit and agent",
    "budget_signals": "cost guard: thresholds already signalled per budget subject",
    "anomaly": "cost guard: spend series per agent (anomaly detection)",
    "refusal_digest": "cost guard: budget_refused signals digested per agent and rule",
    "proxy_agents": "proxy: agents seen (GET /v1/agents)",
    "redis_catch_up": "redis ledger: spend owed to Redis while it is down (beyond: not pushed)",
    "circuits": "circuit breakers: a circuit per breaker and route, tool or agent",
    "throttles": "incidents: throttles in force, one per agent (beyond: soonest lapsing lifted)",
    "rule_cooldowns": "incident rules: when each action last ran, per rendered parameters",
    "incidents_open": "incidents: open incidents (a new one closes the quietest)",
    "incident_agents": "incidents: agents named on one incident",
    "incident_signals": "incidents: firing signal keys (and their values) on one incident",
    "fleet_agents": "fleet: agents seen on this node (their versions, calls, spend)",
    "shadow_in_flight": "rollouts: shadow copies in flight per rollout (beyond: not sent)",
    "certification_versions": "certification: span evidence per agent and version",
    "certification_marks": "certification: budget exhaustions heard per agent",
}
"""Every map or list kept per value clients send, by the name its evictions are counted
under (``agent_sre_state_evictions_total{map=...}``). A new one is added here, and
``tests/adversarial/test_floods_maps.py`` then refuses to pass until it drives the new map
through its entry point with many distinct ids."""

SWEEP_EVERY = 64
"""Idle entries are swept at most once per this many writes (amortised O(1) per call)."""


class BoundedMap(Generic[K, V]):
    """An LRU map with a size cap and idle expiry.

    Args:
        name: the map's name in ``agent_sre_state_evictions_total{map=...}``.
        cap: most entries kept.
        idle_seconds: an entry not touched for this long is dropped (``None``: never).
        on_evict: called with ``name`` and the key of each evicted entry.
    """

    def __init__(
        self,
        name: str,
        cap: int,
        idle_seconds: float | None = None,
        on_evict: Callable[[str, K], None] | None = None,
    ) -> None:
        if cap < 1:
            raise ValueError(f"{name}: cap must be at least 1")
        if name not in REGISTRY and not name.startswith("test"):
            raise ValueError(f"{name}: a bounded map is listed in agent_sre.bounded.REGISTRY")
        self.name = name
        self.cap = cap
        self.idle_seconds = idle_seconds
        self.on_evict = on_evict
        self.evictions = 0
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()
        self._writes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: K, now: float) -> V | None:
        """The entry (marked used at ``now``), or None when absent or idle too long."""
        found = self._entries.get(key)
        if found is None:
            return None
        value, seen = found
        if self.idle_seconds is not None and now - seen > self.idle_seconds:
            del self._entries[key]
            self._evicted([key])
            return None
        self._entries[key] = (value, max(seen, now))
        self._entries.move_to_end(key)
        return value

    def peek(self, key: K) -> V | None:
        """The entry without marking it used."""
        found = self._entries.get(key)
        return None if found is None else found[0]

    def put(self, key: K, value: V, now: float) -> None:
        """Stores ``value`` as used at ``now``, evicting the oldest entries past the cap."""
        entries = self._entries
        if key in entries:
            entries.move_to_end(key)
        entries[key] = (value, now)
        self._writes += 1
        if self._writes >= SWEEP_EVERY:
            self._writes = 0
            self.expire(now)
        over = len(entries) - self.cap
        if over > 0:
            self._evicted([entries.popitem(last=False)[0] for _ in range(over)])

    def setdefault(self, key: K, factory: Callable[[], V], now: float) -> V:
        """The entry for ``key`` (marked used), created with ``factory`` when absent."""
        value = self.get(key, now)
        if value is None:
            value = factory()
            self.put(key, value, now)
        return value

    def pop(self, key: K) -> V | None:
        """Removes an entry (not counted as an eviction)."""
        found = self._entries.pop(key, None)
        return None if found is None else found[0]

    def expire(self, now: float) -> int:
        """Drops every entry idle longer than ``idle_seconds``; returns how many."""
        if self.idle_seconds is None:
            return 0
        limit = now - self.idle_seconds
        entries = self._entries
        dropped: list[K] = []
        # Oldest use first; a later use moved an entry to the end, so stop at the first fresh.
        while entries:
            key = next(iter(entries))
            if entries[key][1] >= limit:
                break
            del entries[key]
            dropped.append(key)
        if dropped:
            self._evicted(dropped)
        return len(dropped)

    def values(self) -> list[V]:
        """A snapshot of the entries, least recently used first."""
        return [value for value, _ in self._entries.values()]

    def items(self) -> Iterator[tuple[K, V]]:
        """Entries, least recently used first."""
        for key, (value, _) in self._entries.items():
            yield key, value

    def keys(self) -> list[K]:
        """A snapshot of the keys, least recently used first (safe to mutate meanwhile)."""
        return list(self._entries)

    def __iter__(self) -> Iterator[K]:
        return iter(self.keys())

    def __getitem__(self, key: K) -> V:
        """The entry without marking it used (so ``dict(bounded_map)`` works)."""
        return self._entries[key][0]

    def clear(self) -> None:
        self._entries.clear()

    def _evicted(self, keys: list[K]) -> None:
        self.evictions += len(keys)
        if self.on_evict is not None:
            for key in keys:
                self.on_evict(self.name, key)
