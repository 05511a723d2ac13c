"""A finished call leaves no reference cycle: its objects (the aiohttp request and response,
the span record, the plan, the ticket) go with its last reference, not with the garbage
collector.

A chunk tap refers back to its call (the capture's recording holds the call; a chaos fault's
tap and the delegation rewrite close over it). Kept on the call after the answer, every
captured call (all of them, as shipped) became a cycle of ~20 objects that the collector
had to find: 3-4x the collector's work on a loaded proxy. The chain drops the taps once the
way back is done; these tests count the calls still alive with the collector off.
"""

from __future__ import annotations

import asyncio
import gc
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from agent_sre.config import Config
from agent_sre_daemon.proxy.call import Call
from agent_sre_daemon.replay.engine import ReplayEngine
from tests.support.context import node_context

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


class HoldsTheCall:
    """A stage whose tap closes over its call, as a chaos fault's does."""

    name, slot = "holds-the-call", "faults"

    def __init__(self) -> None:
        self.seen = 0

    async def on_request(self, call: Call) -> None:
        async def tap(chunk: bytes) -> bytes:
            if call.status >= 0:  # refers to the call, as a real tap does
                self.seen += len(chunk)
            return chunk

        call.add_chunk_tap(tap)

    async def on_response(self, call: Call) -> None:
        return None


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def calls_alive() -> int:
    return sum(1 for o in gc.get_objects() if type(o) is Call)


async def replay_engine(tmp_path: Path) -> ReplayEngine:
    config = Config.model_validate(
        {
            "state_dir": str(tmp_path / "replay-state"),
            "replay": {"enabled": True, "capture": {"enabled": True, "share": 1.0}},
        }
    )
    engine = ReplayEngine(node_context(config))
    await engine.start()
    return engine


async def post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> bytes:
    async with session.post(url, json=body, headers={"X-Agent-Id": "a"}) as response:
        assert response.status == 200
        return await response.read()


@pytest.mark.usefixtures("collector_off")
async def test_captured_calls_whole_and_streamed_are_freed_without_the_collector(
    make_proxy: Any, tmp_path: Path
) -> None:
    engine = await replay_engine(tmp_path)
    holder = HoldsTheCall()
    try:
        proxy = await make_proxy(stages=[*engine.proxy_stages(), holder])
        url = proxy.url + "/openai/v1/chat/completions"
        before = calls_alive()
        async with aiohttp.ClientSession() as session:
            for n in range(12):
                body = {**BODY, "stream": True} if n % 2 else BODY
                await post(session, url, body)
            await asyncio.sleep(0.05)  # what runs just after the answers has run
        assert calls_alive() == before
        assert holder.seen > 0
        # the calls were captured (the path that held them is the one exercised)
        assert engine.buffer is not None and engine.store is not None
        engine.buffer.flush()
        captured = engine.context.registry.get_sample_value("agent_sre_replay_captured_calls_total")
        assert captured == 12
    finally:
        await engine.stop(engine.clock.monotonic() + 5)


@pytest.mark.usefixtures("collector_off")
async def test_a_call_cut_by_its_client_is_freed_without_the_collector(
    make_proxy: Any, provider: Any, tmp_path: Path
) -> None:
    engine = await replay_engine(tmp_path)
    try:
        proxy = await make_proxy(stages=[*engine.proxy_stages(), HoldsTheCall()])
        provider.latency = 0.3
        before = calls_alive()
        async with aiohttp.ClientSession() as session:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(
                    post(session, proxy.url + "/openai/v1/chat/completions", BODY), 0.05
                )
        for _ in range(100):  # the proxy notices the client gone and unwinds
            await asyncio.sleep(0.02)
            if calls_alive() == before:
                break
        assert calls_alive() == before
    finally:
        await engine.stop(engine.clock.monotonic() + 5)
