"""The shared store of summaries: the budgets' Redis.

One key per node, ``{<prefix>}:node:<node>``, written with a TTL, and an index
``{<prefix>}:nodes`` (a sorted set of node names by publish time) read with one ``ZREVRANGE``
and one ``MGET``: no ``SCAN`` over a Redis the budgets' ledger shares. The hash tag keeps
both in one Redis Cluster slot. Every call has a short timeout; the caller never waits on
Redis from the hot path.
"""

from __future__ import annotations

import math

import redis.asyncio as aioredis
from redis.exceptions import RedisError

STORE_ERRORS = (RedisError, OSError, TimeoutError)
INDEX_KEEP_TTLS = 10
"""Index entries older than this many TTLs are removed when a node publishes."""


class RedisSummaryStore:
    kind = "redis"

    def __init__(self, url: str, prefix: str, timeout: float = 0.5) -> None:
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._base = "{" + prefix + "}:"
        self._index = self._base + "nodes"

    def key(self, node: str) -> str:
        return self._base + "node:" + node

    async def publish(self, node: str, data: bytes, at: float, ttl: float) -> None:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.set(self.key(node), data, px=max(1, math.ceil(ttl * 1000)))
            pipe.zadd(self._index, {node: at})
            pipe.zremrangebyscore(self._index, "-inf", at - INDEX_KEEP_TTLS * ttl)
            pipe.expire(self._index, max(1, math.ceil(INDEX_KEEP_TTLS * ttl)))
            await pipe.execute()

    async def read(self, most: int) -> list[tuple[str, bytes]]:
        """``(node, summary bytes)`` of the most recently published nodes whose key still
        exists (at most ``most``)."""
        names = await self._client.zrevrange(self._index, 0, most - 1)
        if not names:
            return []
        texts = [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names]
        values = await self._client.mget([self.key(name) for name in texts])
        return [
            (name, bytes(value))
            for name, value in zip(texts, values, strict=True)
            if isinstance(value, bytes) and value
        ]

    async def close(self) -> None:
        await self._client.aclose()
