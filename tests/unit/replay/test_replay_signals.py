"""The replay engine's signals: refused replay calls digested to one a minute per session;
a failing trace buffer store fires once and resolves at the next good write (the writer
thread hands the signals to the event loop); interesting traces forced out by the size cap
are reported with their count."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from agent_sre.config import Config
from agent_sre.replay.exchange import Exchange
from agent_sre.replay.signals import MismatchDigest, StoreHealth
from agent_sre.replay.traces import summarize
from agent_sre.signals import Severity, SignalState
from agent_sre_daemon.replay.engine import ReplayEngine
from agent_sre_daemon.replay.store import TraceQuery
from tests.support.context import node_context
from tests.unit.replay.test_store_and_traces import request_of

if TYPE_CHECKING:
    from pathlib import Path

    from agent_sre.signals import Signal


def test_refused_calls_signal_at_most_once_a_minute_per_session_with_the_count() -> None:
    digest = MismatchDigest()
    first = digest.refused("s1", "ab" * 16, "matches no recorded call", now=100.0)
    assert first is not None
    assert (first.type, first.source, first.severity, first.value) == (
        "replay_mismatch", "replay", Severity.WARNING, 1.0
    )  # fmt: skip
    assert first.labels == {"session_id": "s1", "trace_id": "ab" * 16}
    assert "matches no recorded call" in first.message
    assert digest.refused("s1", "ab" * 16, "again", now=130.0) is None
    assert digest.refused("s1", "ab" * 16, "again", now=159.0) is None
    other = digest.refused("s2", "cd" * 16, "elsewhere", now=131.0)
    assert other is not None and other.value == 1.0  # sessions are digested apart
    later = digest.refused("s1", "ab" * 16, "and again", now=160.0)
    assert later is not None and later.value == 3.0  # two held back, and this one
    assert "3 calls" in later.message
    digest.forget("s1")  # closed: a session of the same id starts afresh
    fresh = digest.refused("s1", "ab" * 16, "x", now=161.0)
    assert fresh is not None and fresh.value == 1.0


def test_store_health_is_one_firing_and_one_resolved_signal_per_outage() -> None:
    health = StoreHealth()
    assert health.wrote(1.0) is None
    firing = health.failed("OSError: disk full", 2.0)
    assert firing is not None and firing.severity is Severity.CRITICAL
    assert health.failed("OSError: disk full", 3.0) is None
    resolved = health.wrote(4.0)
    assert resolved is not None and resolved.state is SignalState.RESOLVED
    assert resolved.key == firing.key
    assert health.wrote(5.0) is None


def engine_for(tmp_path: Path, **replay: Any) -> ReplayEngine:
    config = Config.model_validate(
        {"state_dir": str(tmp_path / "state"), "replay": {"enabled": True, **replay}}
    )
    return ReplayEngine(node_context(config))


async def signals_of(engine: ReplayEngine, type_: str, count: int) -> list[Signal]:
    """The bus's signals of ``type_`` once there are ``count`` (the writer thread hands them
    to the loop; give it a few passes)."""
    for _ in range(200):
        found = engine.context.bus.recent(type_=type_)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.02)
    return engine.context.bus.recent(type_=type_)


def exchange(n: int) -> Exchange:
    # made now, as a captured call is (one of 1970 is past retention at the writer's first
    # eviction pass)
    return Exchange("openai", "/openai", "openai", "POST", "/v1/chat/completions",
                    request=b'{"n": %d}' % n, trace_id=f"{n:032x}", at=time.time())  # fmt: skip


async def test_a_failing_store_fires_once_and_resolves_at_the_next_good_write(
    tmp_path: Path,
) -> None:
    engine = engine_for(tmp_path)
    await engine.start()
    assert engine.store is not None and engine.buffer is not None
    store, buffer = engine.store, engine.buffer
    write = store.write
    broken = {"on": True}

    def failing_write(*args: Any) -> None:
        if broken["on"]:
            raise OSError("disk full")
        write(*args)

    store.write = failing_write  # type: ignore[method-assign]
    try:
        buffer.capture(exchange(1))
        (firing,) = await signals_of(engine, "replay_store_error", 1)
        assert (firing.severity, firing.state) == (Severity.CRITICAL, SignalState.FIRING)
        assert "disk full" in firing.message and firing.source == "replay"
        buffer.capture(exchange(2))  # still failing: counted, no second signal
        for _ in range(100):
            if buffer.failures >= 2:
                break
            await asyncio.sleep(0.02)
        assert buffer.failures >= 2
        await asyncio.sleep(0.3)  # passes with nothing to write resolve nothing
        assert len(engine.context.bus.recent(type_="replay_store_error")) == 1
        broken["on"] = False
        buffer.capture(exchange(3))
        found = await signals_of(engine, "replay_store_error", 2)
        assert [s.state for s in found] == [SignalState.FIRING, SignalState.RESOLVED]
        assert found[1].key == firing.key
        assert [e.request for e in store.exchanges(f"{3:032x}")] == [b'{"n": 3}']
    finally:
        await engine.stop(engine.clock.monotonic() + 10)


async def test_interesting_traces_forced_out_by_the_size_cap_are_reported(
    tmp_path: Path,
) -> None:
    engine = engine_for(tmp_path, max_size_mib=0.01)  # about 10 KB
    await engine.start()
    buffer = engine.buffer
    assert buffer is not None
    big = "x" * 2000
    try:
        for n in range(1, 4):  # ordinary traces go first...
            request = request_of({"trace": n, "span": n, "attrs": {"p": big}})
            buffer.index.summaries = {s.trace_id.encode(): s for s in summarize(request)}
            buffer.observe(request.SerializeToString(), engine.clock.time())
        buffer.flush()
        assert engine.context.bus.recent(type_="replay_evicted_interesting") == []
        for n in range(10, 20):  # ...then these, kept for their errors, cannot all stay
            request = request_of({"trace": n, "span": n, "error": True, "attrs": {"p": big}})
            buffer.index.summaries = {s.trace_id.encode(): s for s in summarize(request)}
            buffer.observe(request.SerializeToString(), engine.clock.time())
        found = await signals_of(engine, "replay_evicted_interesting", 1)
        assert found, "no replay_evicted_interesting signal"
        assert all(s.severity is Severity.WARNING for s in found)
        evicted = sum(s.value or 0 for s in found)
        assert evicted >= 1
        assert engine.store is not None
        assert evicted == engine.store.evicted_interesting
        assert "replay.max_size_mib" in found[0].message
        with engine.store.lock:
            kept = engine.store.list_traces(TraceQuery(limit=100))
        assert kept and all(t["kept_because"] == ["error"] for t in kept)  # ordinary ones went
        assert len(kept) + evicted == 10
    finally:
        await engine.stop(engine.clock.monotonic() + 10)
