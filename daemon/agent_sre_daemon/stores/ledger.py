"""The interface both budget ledger backends (SQLite, Redis) offer to the proxy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from agent_sre.cost.ledger import Charge, Refusal, Reservation


class LedgerUnavailableError(Exception):
    """The ledger cannot answer and the policy is ``fail_closed``."""


@dataclass(frozen=True)
class CounterView:
    """Spend of one budget subject in one bucket, for the admin API."""

    budget: str
    subject: str
    bucket: int
    spent_usd: float


class LedgerStore(Protocol):
    """Atomic reserve and settle over budget counters, persisted by the backend."""

    async def open(self) -> None: ...

    async def reserve(
        self, charges: tuple[Charge, ...], amount_usd: float
    ) -> Reservation | Refusal:
        """Books the amount on every charge or on none.

        Raises:
            LedgerUnavailableError: when the store is down and the policy is fail_closed.
        """
        ...

    async def settle(self, reservation: Reservation, actual_usd: float) -> list[float]:
        """Books the actual spend; returns each charge's window spend afterwards."""
        ...

    async def used(self, charges: tuple[Charge, ...]) -> list[float]:
        """Spent plus reserved over each charge's window."""
        ...

    async def counters(self) -> list[CounterView]: ...

    async def prune(self, oldest: dict[str, int]) -> None:
        """Drops spend in buckets older than ``oldest[budget]`` (out of every window)."""
        ...

    async def get_blocked(self) -> dict[str, str]: ...

    async def set_blocked(self, agent_id: str, reason: str | None) -> None:
        """Blocks (reason given) or unblocks (None) an agent, durably."""
        ...

    async def close(self) -> None: ...
