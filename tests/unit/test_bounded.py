"""BoundedMap: the cap, idle expiry and eviction counting every per-client map relies on."""

from __future__ import annotations

from collections import OrderedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_sre.bounded import SWEEP_EVERY, BoundedMap


def test_cap_evicts_least_recently_used_and_counts() -> None:
    heard: list[tuple[str, object]] = []
    m: BoundedMap[str, int] = BoundedMap(
        "test", 3, on_evict=lambda name, key: heard.append((name, key))
    )
    for i, key in enumerate("abc"):
        m.put(key, i, now=0.0)
    assert m.get("a", now=1.0) == 0  # a is now the most recently used
    m.put("d", 3, now=2.0)
    assert m.keys() == ["c", "a", "d"]
    assert (len(m), m.evictions, heard) == (3, 1, [("test", "b")])
    assert dict(m) == {"c": 2, "a": 0, "d": 3}


def test_idle_entries_expire_on_read_and_by_sweep() -> None:
    m: BoundedMap[int, str] = BoundedMap("test", 10_000, idle_seconds=10.0)
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
    m: BoundedMap[str, list[int]] = BoundedMap("test", 2)
    m.setdefault("a", list, now=0.0).append(1)
    m.setdefault("a", list, now=0.0).append(2)
    assert m.peek("a") == [1, 2]
    assert m.pop("a") == [1, 2] and m.pop("a") is None
    assert m.evictions == 0
    with pytest.raises(ValueError):
        BoundedMap("test", 0)


@settings(max_examples=200, deadline=None)
@given(
    cap=st.integers(1, 5),
    ops=st.lists(
        st.tuples(st.sampled_from(["put", "get", "pop"]), st.integers(0, 8), st.floats(0, 5)),
        max_size=60,
    ),
)
def test_behaves_like_a_reference_lru_with_idle_expiry(
    cap: int, ops: list[tuple[str, int, float]]
) -> None:
    idle = 10.0
    m: BoundedMap[int, int] = BoundedMap("test", cap, idle_seconds=idle)
    model: OrderedDict[int, tuple[int, float]] = OrderedDict()  # key -> (value, last use)
    evictions = 0
    now = 0.0
    for op, key, step in ops:
        now += step
        if op == "put":
            model.pop(key, None)
            model[key] = (key * 10, now)
            m.put(key, key * 10, now)
            while len(model) > cap:
                model.popitem(last=False)
                evictions += 1
        elif op == "get":
            found = model.get(key)
            if found is not None and now - found[1] > idle:
                del model[key]
                evictions += 1
                found = None
            if found is not None:
                model.move_to_end(key)
                model[key] = (found[0], now)
            assert m.get(key, now) == (None if found is None else found[0])
        else:
            assert m.pop(key) == (model.pop(key)[0] if key in model else None)
        # a sweep may drop idle entries early; never live ones, never beyond the cap
        for gone in [k for k in model if k not in m]:
            assert now - model.pop(gone)[1] > idle
            evictions += 1
        assert m.keys() == list(model)
        assert len(m) <= cap and m.evictions == evictions
