"""The one counter of entries dropped from state kept per client-chosen value
(``agent_sre_state_evictions_total{map}``), shared by every component on a registry.

The maps themselves are listed once, in :data:`agent_sre.bounded.REGISTRY`."""

from __future__ import annotations

from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from prometheus_client import Counter

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from agent_sre.bounded import OnEvict

_COUNTERS: WeakKeyDictionary[CollectorRegistry, Counter] = WeakKeyDictionary()


def state_evictions(registry: CollectorRegistry) -> Counter:
    """The registry's eviction counter (made on first use)."""
    counter = _COUNTERS.get(registry)
    if counter is None:
        counter = _COUNTERS[registry] = Counter(
            "agent_sre_state_evictions",
            "Entries dropped from state kept per value clients send (agent ids, task ids, "
            "tools, incidents), by map: the map was at its cap or the entry was idle "
            "(the maps: agent_sre.bounded.REGISTRY).",
            ["map"],
            registry=registry,
        )
    return counter


def counter_of(registry: CollectorRegistry) -> OnEvict:
    """An ``on_evict`` for the core's bounded maps that counts into the registry's counter."""
    counter = state_evictions(registry)

    def evicted(map_name: str, key: object) -> None:
        counter.labels(map_name).inc()

    return evicted
