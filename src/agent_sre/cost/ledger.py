"""The budget ledger: spent and reserved USD per budget counter, with atomic reserve/settle.

Pure and synchronous: a call of :meth:`BudgetLedger.reserve` checks every charge and books
all of them or none, so callers on one event loop cannot overspend by racing. The daemon
persists :meth:`BudgetLedger.dirty` counters (SQLite) or runs the same algorithm in Redis.

Counters are kept per budget and subject, and subjects (agent ids, task ids) come from
clients: at most ``MAX_COUNTERS`` are kept, the least recently used dropped first (its spend
is forgotten; a store deletes it too, see :meth:`BudgetLedger.take_evicted`). A windowed
counter whose buckets all left their window is dropped by :meth:`BudgetLedger.prune`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent_sre.bounded import BoundedMap

if TYPE_CHECKING:
    from agent_sre.bounded import OnEvict

from agent_sre.cost.windows import first_bucket

_EPSILON = 1e-12
_NO_TIME = 0.0  # the ledger's map has no idle expiry: only its cap and the windows bound it

MAX_COUNTERS = 20_000
"""Budget counters (budget x subject) kept in memory and in the SQLite ledger."""
MAX_EVICTED_PENDING = 100_000
"""Evicted counters remembered until a store deletes them (past this, the rows stay on disk
until the next start evicts them again)."""


@dataclass(frozen=True)
class Charge:
    """One budget counter a call is charged to."""

    budget: str
    subject: str
    """The scope's value: the agent id, task id, team, node name, or ``*`` for global."""
    bucket: int
    span: int
    limit_usd: float
    enforce: bool
    """False for ``alert`` budgets: booked and reported, never refused."""

    @property
    def counter(self) -> str:
        """The key of the window's counter set (one per budget and subject)."""
        return f"{self.budget}|{self.subject}"


@dataclass(frozen=True)
class Reservation:
    """What a call holds until it is settled."""

    id: int
    charges: tuple[Charge, ...]
    amount_usd: float


@dataclass(frozen=True)
class Refusal:
    """The first charge that could not cover the amount."""

    charge: Charge
    spent_usd: float
    reserved_usd: float


@dataclass
class _Counter:
    spent: dict[int, float] = field(default_factory=dict)
    reserved: dict[int, float] = field(default_factory=dict)


class BudgetLedger:
    """In-memory counters of spend and reservations per budget, subject and bucket."""

    def __init__(self, on_evict: OnEvict | None = None, max_counters: int = MAX_COUNTERS) -> None:
        self._on_evict = on_evict
        self._counters: BoundedMap[str, _Counter] = BoundedMap(
            "ledger_counters", max_counters, on_evict=self._evicted
        )
        self._ids = itertools.count(1)
        self._dirty: set[tuple[str, int]] = set()
        self._evicted_keys: list[str] = []

    def __len__(self) -> int:
        return len(self._counters)

    def _evicted(self, name: str, key: Any) -> None:
        if len(self._evicted_keys) < MAX_EVICTED_PENDING:
            self._evicted_keys.append(key)
        if self._on_evict is not None:
            self._on_evict(name, key)

    def _counter(self, key: str) -> _Counter:
        return self._counters.setdefault(key, _Counter, _NO_TIME)

    def take_evicted(self) -> list[str]:
        """Counters dropped for the cap since the last call (a store deletes their rows)."""
        out, self._evicted_keys = self._evicted_keys, []
        return out

    def window_total(self, charge: Charge) -> tuple[float, float]:
        """(spent, reserved) over the charge's window."""
        counter = self._counters.get(charge.counter, _NO_TIME)
        if counter is None:
            return 0.0, 0.0
        first = first_bucket(charge.bucket, charge.span)
        if charge.span == 1:
            return counter.spent.get(charge.bucket, 0.0), counter.reserved.get(charge.bucket, 0.0)
        spent = sum(v for b, v in counter.spent.items() if first <= b <= charge.bucket)
        reserved = sum(v for b, v in counter.reserved.items() if first <= b <= charge.bucket)
        return spent, reserved

    def reserve(self, charges: tuple[Charge, ...], amount_usd: float) -> Reservation | Refusal:
        """Books ``amount_usd`` against every charge, or none when an enforced one is full."""
        for charge in charges:
            if not charge.enforce:
                continue
            spent, reserved = self.window_total(charge)
            used = spent + reserved
            if used + amount_usd > charge.limit_usd + _EPSILON or used >= charge.limit_usd:
                return Refusal(charge, spent, reserved)
        for charge in charges:
            counter = self._counter(charge.counter)
            counter.reserved[charge.bucket] = counter.reserved.get(charge.bucket, 0.0) + amount_usd
        return Reservation(next(self._ids), charges, amount_usd)

    def settle(self, reservation: Reservation, actual_usd: float) -> None:
        """Releases the reservation and books the actual spend in the same buckets."""
        for charge in reservation.charges:
            counter = self._counter(charge.counter)
            left = counter.reserved.get(charge.bucket, 0.0) - reservation.amount_usd
            if left > _EPSILON:
                counter.reserved[charge.bucket] = left
            else:
                counter.reserved.pop(charge.bucket, None)
            self.add_spent(charge.counter, charge.bucket, actual_usd)

    def add_spent(self, counter_key: str, bucket: int, usd: float) -> None:
        """Books spend that was not reserved (settling, loading, catching up)."""
        if usd <= 0:
            return
        counter = self._counter(counter_key)
        counter.spent[bucket] = counter.spent.get(bucket, 0.0) + usd
        self._dirty.add((counter_key, bucket))

    def load(self, counter_key: str, bucket: int, spent_usd: float) -> None:
        """Restores a persisted counter (replaces, does not add)."""
        self._counter(counter_key).spent[bucket] = spent_usd

    def spent(self, counter_key: str, bucket: int) -> float:
        counter = self._counters.peek(counter_key)
        return counter.spent.get(bucket, 0.0) if counter else 0.0

    def take_dirty(self) -> list[tuple[str, int, float]]:
        """Counters changed since the last call, with their current spend (for persisting);
        counters evicted meanwhile are left out (see :meth:`take_evicted`)."""
        out = [
            (key, bucket, self.spent(key, bucket))
            for key, bucket in sorted(self._dirty)
            if key in self._counters
        ]
        self._dirty.clear()
        return out

    def mark_dirty(self, rows: list[tuple[str, int, float]]) -> None:
        """Marks rows again whose write failed, so the next flush retries them."""
        self._dirty.update((key, bucket) for key, bucket, _ in rows)

    def counters(self) -> list[str]:
        return sorted(self._counters.keys())

    def buckets(self, counter_key: str) -> list[tuple[int, float]]:
        """(bucket, spent) of one counter, oldest first."""
        counter = self._counters.peek(counter_key)
        return sorted(counter.spent.items()) if counter else []

    def prune(self, keep: dict[str, int]) -> None:
        """Drops buckets older than ``keep[budget]`` (the oldest bucket still in a window)."""
        emptied = []
        for key, counter in self._counters.items():
            oldest = keep.get(key.split("|", 1)[0])
            if oldest is None:
                continue
            for bucket in [b for b in counter.spent if b < oldest]:
                del counter.spent[bucket]
            if not counter.spent and not counter.reserved:
                emptied.append(key)
        for key in emptied:  # out of every window: nothing left to remember
            self._counters.pop(key)
