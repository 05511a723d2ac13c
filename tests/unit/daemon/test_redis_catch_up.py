"""While Redis is down (fail_open), the spend owed to it is merged per counter field and
bounded, whatever subjects clients invent."""

from __future__ import annotations

import asyncio
import socket

from agent_sre.cost.ledger import Charge, Reservation
from agent_sre_daemon.clock import ManualClock
from agent_sre_daemon.stores.ledger_redis import MAX_CATCH_UP, RedisLedgerStore


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_catch_up_is_merged_and_capped() -> None:
    evicted: dict[str, int] = {}

    def count(name: str, key: object) -> None:
        evicted[name] = evicted.get(name, 0) + 1

    store = RedisLedgerStore(
        f"redis://127.0.0.1:{closed_port()}/0",
        "test",
        "fail_open",
        clock=ManualClock(),  # never moves: Redis stays marked down after the first failure
        on_evict=count,
    )

    async def main() -> None:
        await store.open()
        for repeat in range(2):  # the same subjects twice: merged, not appended
            for i in range(MAX_CATCH_UP + 500):
                charge = Charge("per-task", f"t{i}", 0, 1, 10.0, True)
                reservation = await store.reserve((charge,), 0.01)
                assert isinstance(reservation, Reservation)
                await store.settle(reservation, 0.01 * (repeat + 1))
        assert len(store._pending) == MAX_CATCH_UP
        owed = store._pending[("{test}:per-task|t0", "s0")]
        assert abs(owed[0] - 0.03) < 1e-9  # 0.01 + 0.02 in one field
        await store._client.aclose()

    asyncio.run(main())
    assert evicted["redis_catch_up"] == 2 * 500
