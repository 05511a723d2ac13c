"""Fixed time buckets of good/total counters: exact window sums in constant memory.

Two levels, both rings of *cumulative* counts (the running total at the end of each bucket):

- 1-minute buckets over the last 6 hours (360 slots) answer every window up to 6h
  (the 5m, 30m, 1h, 2h and 6h alert windows) to the minute;
- 1-hour buckets over the SLO window (720 slots for 30d) answer longer windows (1d, 3d, the
  SLO window itself) to the hour.

A window of ``n`` buckets is the bucket holding ``now`` and the ``n - 1`` before it, and its
sum is one subtraction: the running count minus the cumulative count at the end of the bucket
just before the window. So the cost of a span is two integer additions, the cost of reading a
window does not depend on its length, and a series takes ``16 * (360 + window_hours)`` bytes
(17 KiB for 30d) whatever the traffic. The running counts are also the lifetime totals that
``agent_sre_slo_events_total`` exports.
"""

from __future__ import annotations

from array import array
from typing import Any

from agent_sre.slo.windows import FINE_SPAN, HOUR, MINUTE

FINE_SLOTS = int(FINE_SPAN // MINUTE)
MINUTES_PER_HOUR = 60


class SnapshotError(ValueError):
    """Saved bucket data that cannot be read back."""


def window_buckets(seconds: float, hours: int) -> tuple[bool, int]:
    """Where a window is read: ``(True, minutes)`` from the minute ring, else ``(False, hours)``.

    Raises:
        ValueError: when the window is not a whole number of its level's buckets or is longer
            than the hour ring (the SLO window).
    """
    if seconds <= FINE_SPAN and seconds % MINUTE == 0 and seconds >= MINUTE:
        return True, int(seconds // MINUTE)
    if seconds % HOUR == 0 and HOUR <= seconds <= hours * HOUR:
        return False, int(seconds // HOUR)
    raise ValueError(f"a window of {seconds}s cannot be read from buckets of {hours}h")


class BucketSeries:
    """The counters of one SLO instance (one label set).

    ``good`` and ``total`` are the running counts since the series started; ``minute`` is the
    minute (unix seconds // 60) of the bucket currently being filled.
    """

    __slots__ = ("minute", "next_at", "good", "total", "_fine_good", "_fine_total",
                 "_hour_good", "_hour_total", "_hours")  # fmt: skip

    def __init__(self, minute: int, hours: int, good: int = 0, total: int = 0) -> None:
        self.minute = minute
        self.next_at = (minute + 1) * MINUTE
        """When the current bucket ends (unix seconds): the hot path compares ``now`` with it
        and calls :meth:`roll` only then."""
        self.good = good
        self.total = total
        self._hours = hours
        self._fine_good = array("q", [good]) * FINE_SLOTS
        self._fine_total = array("q", [total]) * FINE_SLOTS
        self._hour_good = array("q", [good]) * hours
        self._hour_total = array("q", [total]) * hours

    @property
    def hours(self) -> int:
        return self._hours

    def roll(self, now: float) -> None:
        """:meth:`advance` to the minute holding ``now`` (unix seconds)."""
        self.advance(int(now // MINUTE))

    def advance(self, minute: int) -> None:
        """Closes the buckets up to ``minute``; a gap is buckets with no events.

        A ``minute`` in the past is ignored: events are never booked into closed buckets.
        """
        old = self.minute
        if minute <= old:
            return
        good, total = self.good, self.total
        fine_good, fine_total = self._fine_good, self._fine_total
        for m in range(max(old, minute - FINE_SLOTS), minute):
            slot = m % FINE_SLOTS
            fine_good[slot] = good
            fine_total[slot] = total
        old_hour, hour, hours = old // MINUTES_PER_HOUR, minute // MINUTES_PER_HOUR, self._hours
        if hour > old_hour:
            hour_good, hour_total = self._hour_good, self._hour_total
            for h in range(max(old_hour, hour - hours), hour):
                slot = h % hours
                hour_good[slot] = good
                hour_total[slot] = total
        self.minute = minute
        self.next_at = (minute + 1) * MINUTE

    def window(self, fine: bool, buckets: int) -> tuple[int, int]:
        """``(good, total)`` over the last ``buckets`` buckets of a level (see
        :func:`window_buckets`), the current one included. Call :meth:`advance` first."""
        if fine:
            slot = (self.minute - buckets) % FINE_SLOTS
            return self.good - self._fine_good[slot], self.total - self._fine_total[slot]
        slot = (self.minute // MINUTES_PER_HOUR - buckets) % self._hours
        return self.good - self._hour_good[slot], self.total - self._hour_total[slot]

    def hour_copy(self) -> HourCopy:
        """The hour ring copied (a C-level copy of two arrays), to be read by
        :func:`hour_deltas` off the event loop. Call :meth:`advance` first."""
        return (
            self.minute // MINUTES_PER_HOUR,
            self.good,
            self.total,
            self._hour_good[:],
            self._hour_total[:],
        )

    def to_data(self) -> dict[str, Any]:
        """The series as JSON-able data: running counts and the non-empty buckets of each
        level as ``[index, good, total]`` (minutes and hours since the epoch)."""
        minute, hour = self.minute, self.minute // MINUTES_PER_HOUR
        return {
            "minute": minute,
            "good": self.good,
            "total": self.total,
            "minutes": _deltas(
                minute, self.good, self.total, self._fine_good, self._fine_total
            ),  # fmt: skip
            "hours": _deltas(hour, self.good, self.total, self._hour_good, self._hour_total),
        }

    @classmethod
    def from_data(cls, data: Any, now_minute: int, hours: int) -> BucketSeries | None:
        """Rebuilds a series saved by :meth:`to_data`, for an SLO window of ``hours``.

        Buckets older than the window at ``now_minute`` are dropped, and None is returned when
        nothing of the series is left in the window.

        Raises:
            SnapshotError: when the data is malformed or inconsistent.
        """
        if not isinstance(data, dict):
            raise SnapshotError("a series must be a mapping")
        minute = _int(data, "minute")
        good, total = _int(data, "good"), _int(data, "total")
        if not 0 <= good <= total:
            raise SnapshotError("a series needs 0 <= good <= total")
        if now_minute - minute >= hours * MINUTES_PER_HOUR:
            return None
        series = cls(minute, hours, good, total)
        _rebuild(minute, good, total, data.get("minutes", []), series._fine_good,
                 series._fine_total)  # fmt: skip
        _rebuild(minute // MINUTES_PER_HOUR, good, total, data.get("hours", []),
                 series._hour_good, series._hour_total)  # fmt: skip
        series.advance(now_minute)
        return series


HourCopy = tuple[int, int, int, "array[int]", "array[int]"]
"""``(hour, good, total, ring good, ring total)`` of :meth:`BucketSeries.hour_copy`."""


def hour_deltas(copy: HourCopy) -> list[list[int]]:
    """The non-empty hour buckets of a copied ring as ``[hour, good, total]``, oldest first
    (hours since the epoch; the current, still filling hour included)."""
    return _deltas(*copy)


def _deltas(
    current: int, good: int, total: int, ring_good: array[int], ring_total: array[int]
) -> list[list[int]]:
    size = len(ring_total)
    out: list[list[int]] = []
    after_good, after_total = good, total
    for index in range(current, current - size, -1):
        slot = (index - 1) % size
        before_good, before_total = ring_good[slot], ring_total[slot]
        if after_total != before_total:
            out.append([index, after_good - before_good, after_total - before_total])
        after_good, after_total = before_good, before_total
    out.reverse()
    return out


def _rebuild(
    current: int, good: int, total: int, deltas: Any, ring_good: array[int], ring_total: array[int]
) -> None:
    size = len(ring_total)
    if not isinstance(deltas, list):
        raise SnapshotError("bucket lists must be lists of [index, good, total]")
    by_index: dict[int, tuple[int, int]] = {}
    for entry in deltas:
        if (
            not isinstance(entry, list)
            or len(entry) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in entry)
        ):
            raise SnapshotError(f"bad bucket {entry!r}: expected [index, good, total]")
        index, bucket_good, bucket_total = entry
        if not 0 <= bucket_good <= bucket_total:
            raise SnapshotError(f"bad bucket {entry!r}: needs 0 <= good <= total")
        if current - size < index <= current:
            by_index[index] = (bucket_good, bucket_total)
    for index in range(current, current - size, -1):
        bucket_good, bucket_total = by_index.get(index, (0, 0))
        good -= bucket_good
        total -= bucket_total
        if good < 0 or total < 0:
            raise SnapshotError("the buckets add up to more than the running counts")
        slot = (index - 1) % size
        ring_good[slot] = good
        ring_total[slot] = total


def _int(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SnapshotError(f"{key}: expected an integer >= 0, got {value!r}")
    return value
