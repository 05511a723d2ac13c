"""``throttle_agent``, the automatic response: a throttled agent's calls go through at the
set pace for a while, the rest get ``agent_throttled`` (429, Retry-After); others are not
affected; bad parameters are refused with a message. Throttles outlive a restart of the
incidents engine until lifted (``unthrottle_agent``) or lapsed; one that cannot be saved
holds in memory and says so."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import openai
import pytest

from agent_sre.config import Config
from agent_sre_daemon.clock import ManualClock
from agent_sre_daemon.incidents.runtime import IncidentsRuntime
from agent_sre_daemon.incidents.throttle import ThrottleStage
from tests.support.context import node_context

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from tests.proxy.conftest import ProxyFactory

MESSAGES = [{"role": "user", "content": "hi"}]


async def test_a_throttled_agent_is_paced_for_a_while(make_proxy: ProxyFactory) -> None:
    clock = ManualClock()
    stage = ThrottleStage(clock)
    proxy = await make_proxy(clock=clock, stages=[stage])
    client = openai.AsyncOpenAI(base_url=f"{proxy.url}/openai/v1", api_key="sk-x", max_retries=0)
    done = await stage.throttle({"agent_id": "a1", "requests_per_minute": "2", "for": "5m"})
    assert done == "agent a1 throttled to 2 requests a minute for 300s"

    async def call(agent: str) -> None:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Agent-Id": agent}
        )

    await call("a1")
    with pytest.raises(openai.RateLimitError) as throttled:
        await call("a1")
    assert throttled.value.response.headers["retry-after"] == "30"
    assert throttled.value.response.headers["x-agent-sre-error"] == "agent_throttled"
    await call("a2")  # another agent is not affected
    clock.advance(30)
    await call("a1")
    clock.advance(301)  # the throttle lapses
    for _ in range(3):
        await call("a1")
    assert stage.throttled == {}

    await stage.throttle({"agent_id": "a3", "for": "600"})
    assert await stage.unthrottle({"agent_id": "a3"}) == "agent a3 no longer throttled"
    assert await stage.unthrottle({"agent_id": "a3"}) == "agent a3 was not throttled"
    with pytest.raises(ValueError, match="above 0"):
        await stage.throttle({"agent_id": "a4", "requests_per_minute": "0"})
    with pytest.raises(ValueError, match="not a duration"):
        await stage.throttle({"agent_id": "a4", "for": "soon"})
    with pytest.raises(KeyError):
        await stage.throttle({})


# -- kept across restarts (the incidents engine's SQLite file) ----------------------------


class Engines:
    """Incidents engines started one after another on one state dir and one clock, each
    with a proxy in front of its throttle stage (a restart of the node, in-process)."""

    def __init__(self, make_proxy: ProxyFactory, state_dir: Path, clock: ManualClock) -> None:
        self.make_proxy = make_proxy
        self.config = Config.model_validate({"state_dir": str(state_dir)})
        self.clock = clock
        self.engine: IncidentsRuntime | None = None
        self.client: openai.AsyncOpenAI | None = None

    async def start(self) -> IncidentsRuntime:
        await self.stop()
        self.engine = IncidentsRuntime(node_context(self.config, self.clock))
        await self.engine.start()
        proxy = await self.make_proxy(clock=self.clock, stages=self.engine.proxy_stages())
        self.client = openai.AsyncOpenAI(
            base_url=f"{proxy.url}/openai/v1", api_key="sk-x", max_retries=0
        )
        return self.engine

    async def stop(self) -> None:
        if self.engine is not None:
            await self.engine.stop(self.clock.monotonic() + 5)
            self.engine = None
        if self.client is not None:
            await self.client.close()
            self.client = None

    async def act(self, action: str, **params: str) -> str:
        """Runs an action as a rule does."""
        assert self.engine is not None
        return await self.engine.context.actions[action](params)

    async def passes(self, agent: str) -> bool:
        """One call as ``agent``: answered (True) or throttled (False)."""
        assert self.client is not None
        try:
            await self.client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Agent-Id": agent}
            )
        except openai.RateLimitError as refused:
            assert refused.response.headers["x-agent-sre-error"] == "agent_throttled"
            return False
        return True


@pytest.fixture
async def engines(make_proxy: ProxyFactory, tmp_path: Path) -> AsyncIterator[Engines]:
    made = Engines(make_proxy, tmp_path / "incidents-state", ManualClock())
    yield made
    await made.stop()


async def test_a_throttle_outlives_a_restart_until_lifted_or_lapsed(engines: Engines) -> None:
    clock = engines.clock
    await engines.start()
    await engines.act("throttle_agent", agent_id="a1", requests_per_minute="2", **{"for": "5m"})
    await engines.act("throttle_agent", agent_id="a2", requests_per_minute="2", **{"for": "1h"})
    assert [await engines.passes("a1") for _ in range(2)] == [True, False]

    # a restart: a1 and a2 are still throttled, without a fresh burst (no extra call)
    clock.advance(10)
    engine = await engines.start()
    assert sorted(engine.throttles.throttled) == ["a1", "a2"]
    assert await engines.passes("a1") is False
    assert await engines.passes("a2") is False
    assert await engines.passes("someone-else") is True
    clock.advance(30)  # the pace as before: one call each 30 s
    assert [await engines.passes("a1") for _ in range(2)] == [True, False]

    # unthrottle_agent lifts a2 for good; a1 lapses while the node is down
    assert await engines.act("unthrottle_agent", agent_id="a2") == "agent a2 no longer throttled"
    assert await engines.passes("a2") is True
    await engines.stop()
    clock.advance(300)  # past a1's 5 minutes
    engine = await engines.start()
    assert engine.throttles.throttled == {}
    assert [await engines.passes(agent) for agent in ("a1", "a1", "a2", "a2")] == [True] * 4

    # one that lapses while the node runs is free, and stays free after a restart
    await engines.act("throttle_agent", agent_id="a3", **{"for": "1m"})
    assert [await engines.passes("a3") for _ in range(2)] == [True, False]
    clock.advance(61)
    assert [await engines.passes("a3") for _ in range(2)] == [True, True]
    engine = await engines.start()
    assert engine.throttles.throttled == {}


async def test_a_throttle_that_cannot_be_saved_holds_and_says_so(
    engines: Engines, caplog: pytest.LogCaptureFixture
) -> None:
    await engines.start()
    assert engines.engine is not None
    database = engines.engine.store.path
    # the file refuses writes to the throttles (as a full or read-only disk would)
    with sqlite3.connect(database) as other:
        other.execute(
            "CREATE TRIGGER refuse_insert BEFORE INSERT ON throttles "
            "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
        )
    with caplog.at_level(logging.ERROR, "agent_sre.incidents"):
        done = await engines.act("throttle_agent", agent_id="a1", **{"for": "1h"})
    assert done.startswith("agent a1 throttled to 6 requests a minute for 3600s; not saved")
    assert "disk I/O error" in done
    assert "throttle of agent a1 not saved (a restart lifts it)" in caplog.text
    # it holds in memory all the same
    assert [await engines.passes("a1") for _ in range(2)] == [True, False]
    await engines.start()
    assert await engines.passes("a1") is True  # the restart lifted it, as it said

    # an unthrottle that cannot be saved: the throttle comes back with a restart, as it says
    with sqlite3.connect(database) as other:
        other.execute("DROP TRIGGER refuse_insert")
    await engines.act("throttle_agent", agent_id="a2", **{"for": "1h"})
    with sqlite3.connect(database) as other:
        other.execute(
            "CREATE TRIGGER refuse_delete BEFORE DELETE ON throttles "
            "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
        )
    with caplog.at_level(logging.ERROR, "agent_sre.incidents"):
        lifted = await engines.act("unthrottle_agent", agent_id="a2")
    assert lifted.startswith("agent a2 no longer throttled; still saved, a restart puts it back")
    assert "throttle of agent a2 still saved" in caplog.text
    assert [await engines.passes("a2") for _ in range(2)] == [True, True]
    engine = await engines.start()
    assert list(engine.throttles.throttled) == ["a2"]
    assert await engines.passes("a2") is False


async def test_throttles_kept_by_an_earlier_version_are_restored_and_listed(
    engines: Engines,
) -> None:
    """A file written before throttles recorded when and by whom: its columns are added at
    start, its throttles hold, and they are listed as put on by someone unknown."""
    path = Path(engines.config.state_dir) / "incidents.sqlite"
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE throttles (agent_id TEXT PRIMARY KEY, "
            "requests_per_minute REAL NOT NULL, until REAL NOT NULL)"
        )
        old.execute("INSERT INTO throttles VALUES ('a1', 2.0, ?)", (engines.clock.time() + 600,))
    engine = await engines.start()
    [kept] = engine.throttles.in_force(engines.clock.time())
    row = kept.to_dict(engines.clock.time())
    assert (row["agent_id"], row["since"], row["by"], row["left_seconds"]) == (
        "a1", None, "unknown", 600.0
    )  # fmt: skip
    assert await engines.passes("a1") is False
    # new throttles are written with when and by whom, and read back so after a restart
    await engines.act("throttle_agent", agent_id="a2", **{"for": "1h"})
    engine = await engines.start()
    now = engines.clock.time()
    listed = [t.to_dict(now) for t in engine.throttles.in_force(now)]
    assert [(t["agent_id"], t["by"]) for t in listed] == [("a1", "unknown"), ("a2", "unknown")]
    assert listed[1]["since"] == engines.clock.time()
