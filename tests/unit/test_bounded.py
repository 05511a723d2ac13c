"""BoundedMap: the cap, idle expiry and eviction counting every per-client map relies on."""

from __future__ import annotations

import pytest

from agent_sre.bounded import SWEEP_EVERY, BoundedMap


def test_cap_evicts_least_recently_used_and_counts() -> None:
    heard: list[tuple[str, object]] = []
    m: BoundedMap[str, int] = BoundedMap(
        "m", 3, on_evict=lambda name, key: heard.append((name, key))
    )
    for i, key in enumerate("abc"):
        m.put(key, i, now=0.0)
    assert m.get("a", now=1.0) == 0  # a is now the most recently used
    m.put("d", 3, now=2.0)
    assert m.keys() == ["c", "a", "d"]
    assert (len(m), m.evictions, heard) == (3, 1, [("m", "b")])
    assert dict(m) == {"c": 2, "a": 0, "d": 3}


def test_idle_entries_expire_on_read_and_by_sweep() -> None:
    m: BoundedMap[int, str] = BoundedMap("m", 10_000, idle_seconds=10.0)
    m.put(1, "old", now=0.0)
    assert m.get(1, now=10.0) == "old"  # touched at 10
    assert m.get(1, now=20.5) is None and m.evictions == 1
    for i in range(SWEEP_EVERY - 2):
        m.put(100 + i, "x", now=0.0)
    m.put(999, "fresh", now=100.0)  # the SWEEP_EVERY-th write sweeps the idle ones
    assert m.keys() == [999]
    assert m.evictions == 1 + SWEEP_EVERY - 2
    assert m.expire(now=111.0) == 1 and len(m) == 0


def test_pop_and_setdefault_are_not_evictions() -> None:
    m: BoundedMap[str, list[int]] = BoundedMap("m", 2)
    m.setdefault("a", list, now=0.0).append(1)
    m.setdefault("a", list, now=0.0).append(2)
    assert m.peek("a") == [1, 2]
    assert m.pop("a") == [1, 2] and m.pop("a") is None
    assert m.evictions == 0
    with pytest.raises(ValueError):
        BoundedMap("m", 0)
