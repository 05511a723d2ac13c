"""Events as signals without a flood: at most one report per key per interval, carrying how
many events happened since the last one (refusals of an agent by a rule, calls a replay
session refused)."""

from __future__ import annotations

from typing import Generic, TypeVar

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

    def __init__(self, interval: float, max_tracked: int = 10_000) -> None:
        self._interval = interval
        self._max = max_tracked
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
        self._last = {
            key: seen for key, seen in self._last.items() if now - seen[0] < self._interval
        }
        while len(self._last) >= self._max:  # all recent: drop the oldest
            del self._last[min(self._last, key=lambda key: self._last[key][0])]
