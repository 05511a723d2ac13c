"""The cluster-wide budget ledger: counters in Redis, reserve and settle atomic in Lua.

Every daemon of a fleet pointing at one Redis shares one ledger. Counter hashes hold
``s<bucket>`` (spent) and ``r<bucket>`` (reserved) fields; keys carry a hash tag so a
multi-budget reservation stays in one Redis Cluster slot.

When Redis cannot answer, ``fail_closed`` refuses priced calls (:class:`LedgerUnavailableError`)
and ``fail_open`` books them in a local ledger whose spend is pushed to Redis once it is
back (the catch-up). Either way ``on_error`` is told, so the daemon counts and signals it.
Redis is retried at most once per ``retry_interval`` while it is down, so an outage does not
add a connect attempt to every call. The catch-up merges increments per counter field and
keeps at most ``MAX_CATCH_UP`` fields (one per budget subject and bucket): past that, spend of
new subjects is not pushed (counted as evictions of ``redis_catch_up``).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from agent_sre.cost.ledger import BudgetLedger, Charge, Refusal, Reservation
from agent_sre_daemon.clock import SYSTEM_CLOCK
from agent_sre_daemon.stores.ledger import CounterView, LedgerUnavailableError

if TYPE_CHECKING:
    from collections.abc import Callable

    from agent_sre.bounded import OnEvict
    from agent_sre_daemon.clock import Clock

MAX_CATCH_UP = 20_000
"""Counter fields (budget subject x bucket, spent or reserved) kept for the catch-up."""

# KEYS: counters. ARGV: amount, then per key: bucket, span, limit, enforce, ttl.
_RESERVE = """
local amount = tonumber(ARGV[1])
for i = 1, #KEYS do
  local a = 2 + (i - 1) * 5
  if ARGV[a + 3] == '1' then
    local bucket, span, limit = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    local fields = {}
    for b = bucket - span + 1, bucket do
      fields[#fields + 1] = 's' .. b
      fields[#fields + 1] = 'r' .. b
    end
    local values = redis.call('HMGET', KEYS[i], unpack(fields))
    local used = 0
    for j = 1, #values do
      if values[j] then used = used + tonumber(values[j]) end
    end
    if used + amount > limit + 1e-12 or used >= limit then
      return {i, tostring(used)}
    end
  end
end
for i = 1, #KEYS do
  local a = 2 + (i - 1) * 5
  redis.call('HINCRBYFLOAT', KEYS[i], 'r' .. ARGV[a], amount)
  redis.call('EXPIRE', KEYS[i], ARGV[a + 4])
end
return {0, '0'}
"""

# KEYS: counters. ARGV: released, actual, then per key: bucket, span, ttl.
# Returns each counter's window spend after settling.
_SETTLE = """
local released, actual = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i = 1, #KEYS do
  local a = 3 + (i - 1) * 3
  local bucket, span = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  if released > 0 then
    local left = tonumber(redis.call('HINCRBYFLOAT', KEYS[i], 'r' .. bucket, -released))
    if left <= 1e-12 then redis.call('HDEL', KEYS[i], 'r' .. bucket) end
  end
  if actual > 0 then
    redis.call('HINCRBYFLOAT', KEYS[i], 's' .. bucket, actual)
  end
  redis.call('EXPIRE', KEYS[i], ARGV[a + 2])
  -- drop the buckets that slid out of the window (the key's TTL covers idle keys)
  local stale = {}
  for b = bucket - 2 * span, bucket - span do
    stale[#stale + 1] = 's' .. b
    stale[#stale + 1] = 'r' .. b
  end
  redis.call('HDEL', KEYS[i], unpack(stale))
  local fields = {}
  for b = bucket - span + 1, bucket do fields[#fields + 1] = 's' .. b end
  local values = redis.call('HMGET', KEYS[i], unpack(fields))
  local spent = 0
  for j = 1, #values do
    if values[j] then spent = spent + tonumber(values[j]) end
  end
  out[i] = tostring(spent)
end
return out
"""

# KEYS: counters. ARGV per key: bucket, span. Spent plus reserved over each window.
_USED = """
local out = {}
for i = 1, #KEYS do
  local bucket, span = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local fields = {}
  for b = bucket - span + 1, bucket do
    fields[#fields + 1] = 's' .. b
    fields[#fields + 1] = 'r' .. b
  end
  local values = redis.call('HMGET', KEYS[i], unpack(fields))
  local used = 0
  for j = 1, #values do
    if values[j] then used = used + tonumber(values[j]) end
  end
  out[i] = tostring(used)
end
return out
"""

_ERRORS = (RedisError, OSError, TimeoutError)
_TTL_SECONDS = {1: 40 * 86400, 60: 2 * 3600, 96: 2 * 86400}


def _ttl(charge: Charge) -> int:
    return _TTL_SECONDS.get(charge.span, 40 * 86400)


class RedisLedgerStore:
    """Budget ledger shared through Redis, with a local fallback for ``fail_open``."""

    def __init__(
        self,
        url: str,
        prefix: str,
        policy: str,
        on_error: Callable[[str], None] | None = None,
        timeout: float = 0.5,
        retry_interval: float = 1.0,
        *,
        clock: Clock = SYSTEM_CLOCK,
        on_evict: OnEvict | None = None,
    ) -> None:
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True
        )
        self._prefix = "{" + prefix + "}:"
        self._fail_open = policy == "fail_open"
        self.on_error = on_error
        self._retry_interval = retry_interval
        self._clock = clock
        self._on_evict = on_evict
        self._down_until = float("-inf")
        self._ids = itertools.count(1)
        self._local = BudgetLedger(on_evict)
        self._local_ids: set[int] = set()
        self._pending: dict[tuple[str, str], tuple[float, int]] = {}
        """Catch-up: (key, field) -> (increment, ttl) to apply once Redis answers again."""
        self._blocked_cache: dict[str, str] = {}
        self._scripts: dict[str, Any] = {}

    async def open(self) -> None:
        for name, source in (("reserve", _RESERVE), ("settle", _SETTLE), ("used", _USED)):
            self._scripts[name] = self._client.register_script(source)
        try:
            await self._client.ping()
        except _ERRORS as exc:
            self._failed(exc)

    def _key(self, charge: Charge) -> str:
        return self._prefix + charge.counter

    async def _call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        if self._clock.monotonic() < self._down_until:
            raise ConnectionError("redis marked down")
        if self._pending:
            await self._catch_up()
        return await self._scripts[name](keys=keys, args=args)

    def _failed(self, exc: BaseException) -> None:
        self._down_until = self._clock.monotonic() + self._retry_interval
        if self.on_error is not None:
            self.on_error(f"redis ledger: {type(exc).__name__}: {exc}")

    def _owe(self, key: str, field: str, amount: float, ttl: int) -> None:
        """Adds an increment to the catch-up (merged with the field's earlier ones)."""
        pending = self._pending
        found = pending.get((key, field))
        if found is not None:
            pending[(key, field)] = (found[0] + amount, max(found[1], ttl))
        elif len(pending) < MAX_CATCH_UP:
            pending[(key, field)] = (amount, ttl)
        elif self._on_evict is not None:
            self._on_evict("redis_catch_up", (key, field))

    async def _catch_up(self) -> None:
        pending, self._pending = self._pending, {}
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                for (key, field), (amount, ttl) in pending.items():
                    pipe.hincrbyfloat(key, field, amount)
                    pipe.expire(key, ttl)
                await pipe.execute()
        except BaseException:
            for (key, field), (amount, ttl) in pending.items():
                self._owe(key, field, amount, ttl)
            raise

    async def reserve(
        self, charges: tuple[Charge, ...], amount_usd: float
    ) -> Reservation | Refusal:
        args: list[Any] = [repr(amount_usd)]
        for charge in charges:
            args += [
                charge.bucket,
                charge.span,
                repr(charge.limit_usd),
                "1" if charge.enforce else "0",
                _ttl(charge),
            ]
        try:
            index, used = await self._call("reserve", [self._key(c) for c in charges], args)
        except _ERRORS as exc:
            self._failed(exc)
            if not self._fail_open:
                raise LedgerUnavailableError(str(exc)) from exc
            outcome = self._local.reserve(charges, amount_usd)
            if isinstance(outcome, Reservation):
                self._local_ids.add(outcome.id)
            return outcome
        if int(index):
            return Refusal(charges[int(index) - 1], float(used), 0.0)
        return Reservation(-next(self._ids), charges, amount_usd)

    async def settle(self, reservation: Reservation, actual_usd: float) -> list[float]:
        charges = reservation.charges
        if reservation.id in self._local_ids:
            self._local_ids.discard(reservation.id)
            self._local.settle(reservation, actual_usd)
            for charge in charges:
                self._owe(self._key(charge), f"s{charge.bucket}", actual_usd, _ttl(charge))
            return [self._local.window_total(charge)[0] for charge in charges]
        args: list[Any] = [repr(reservation.amount_usd), repr(actual_usd)]
        for charge in charges:
            args += [charge.bucket, charge.span, _ttl(charge)]
        try:
            totals = await self._call("settle", [self._key(c) for c in charges], args)
        except _ERRORS as exc:
            self._failed(exc)
            for charge in charges:
                key, ttl = self._key(charge), _ttl(charge)
                self._owe(key, f"r{charge.bucket}", -reservation.amount_usd, ttl)
                self._owe(key, f"s{charge.bucket}", actual_usd, ttl)
            return [actual_usd for _ in charges]
        return [float(value) for value in totals]

    async def used(self, charges: tuple[Charge, ...]) -> list[float]:
        args: list[Any] = []
        for charge in charges:
            args += [charge.bucket, charge.span]
        try:
            values = await self._call("used", [self._key(c) for c in charges], args)
        except _ERRORS:
            return [sum(self._local.window_total(charge)) for charge in charges]
        return [float(value) for value in values]

    async def counters(self) -> list[CounterView]:
        out: list[CounterView] = []
        try:
            async for raw_key in self._client.scan_iter(match=self._prefix + "*|*", count=500):
                key = str(raw_key)
                budget, subject = key[len(self._prefix) :].split("|", 1)
                fields = await self._client.hgetall(raw_key)
                for field, value in fields.items():
                    name = str(field)
                    if name.startswith("s"):
                        out.append(CounterView(budget, subject, int(name[1:]), float(value)))
        except _ERRORS as exc:
            self._failed(exc)
        return sorted(out, key=lambda view: (view.budget, view.subject, view.bucket))

    async def prune(self, oldest: dict[str, int]) -> None:
        """Nothing to do: settling drops stale buckets and idle keys expire."""
        self._local.prune(oldest)

    async def get_blocked(self) -> dict[str, str]:
        try:
            raw = await self._client.hgetall(self._prefix + "blocked")
        except _ERRORS as exc:
            self._failed(exc)
            return dict(self._blocked_cache)
        self._blocked_cache = {str(k): str(v) for k, v in raw.items()}
        return dict(self._blocked_cache)

    async def set_blocked(self, agent_id: str, reason: str | None) -> None:
        if reason is None:
            self._blocked_cache.pop(agent_id, None)
        else:
            self._blocked_cache[agent_id] = reason
        try:
            if reason is None:
                await self._client.hdel(self._prefix + "blocked", agent_id)
            else:
                await self._client.hset(self._prefix + "blocked", agent_id, reason)
        except _ERRORS as exc:
            self._failed(exc)

    async def close(self) -> None:
        if self._pending:
            try:
                await self._catch_up()
            except _ERRORS as exc:
                self._failed(exc)
        await self._client.aclose()
