"""Events as signals without a flood: at most one report per key per interval, carrying how
many events happened since the last one (refusals of an agent by a rule, calls a replay
session refused)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from agent_sre.bounded import OnEvict

K = TypeVar("K")


class EventDigest(Generic[K]):
    """The first event of a key is reported at once (count 1); later ones within
    ``interval`` seconds are counted quietly and reported, with the event that ends the quiet
    interval, as its count.

    Args:
        interval: seconds between two reports of one key.
        max_tracked: keys often come from clients: past this many, quiet ones are dropped
            (then the oldest).
    """

    def __init__(
        self,
        interval: float,
        max_tracked: int = 10_000,
        name: str = "",
        on_evict: OnEvict | None = None,
    ) -> None:
        self._interval = interval
        self._max = max_tracked
        self._name = name
        """The name its dropped keys are counted under (``agent_sre.bounded.REGISTRY``)."""
        self._on_evict = on_evict
        self._last: dict[K, tuple[float, int]] = {}
        """key -> (time of the last report, events counted since)."""

    def due(self, key: K, now: float) -> int | None:
        """The count to report for this event of ``key``, or None while the key is quiet."""
        last = self._last.get(key)
        if last is not None and now - last[0] < self._interval:
            self._last[key] = (last[0], last[1] + 1)
            return None
        if last is None and len(self._last) >= self._max:
            self._forget_quiet(now)
        self._last[key] = (now, 0)
        return 1 + (last[1] if last is not None else 0)

    def forget(self, key: K) -> None:
        self._last.pop(key, None)

    def __len__(self) -> int:
        return len(self._last)

    def _forget_quiet(self, now: float) -> None:
        kept = {key: seen for key, seen in self._last.items() if now - seen[0] < self._interval}
        dropped = [key for key in self._last if key not in kept]
        self._last = kept
        while len(self._last) >= self._max:  # all recent: drop the oldest
            oldest = min(self._last, key=lambda key: self._last[key][0])
            del self._last[oldest]
            dropped.append(oldest)
        if self._on_evict is not None:
            for key in dropped:
                self._on_evict(self._name, key)
