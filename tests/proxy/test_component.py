"""The proxy as a component: two-phase reload, stages other components add, stop."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import openai
import pytest
from aiohttp import web

from agent_sre.cost.budgets import CallIdentity, charges_for
from agent_sre_daemon.component import ReloadError
from tests.proxy.conftest import proxy_config
from tests.proxy.test_budgets import BODY, sdk


async def outcome(proxy, agent: str = "a1") -> str:
    try:
        await sdk(proxy, agent, retries=0).chat.completions.create(**BODY)
    except openai.APIStatusError as exc:
        return str(exc.body["type"])
    return "ok"


def resource_node(proxy) -> str:
    resource = proxy.spans[-1].resource_spans[0].resource
    return next(kv.value.string_value for kv in resource.attributes if kv.key == "agent_sre.node")


async def test_reload_is_prepared_then_committed(make_proxy, provider) -> None:
    proxy = await make_proxy()
    tiny = {"budgets": [{"name": "tiny", "scope": "global", "limit_usd": 1e-9}]}
    new = proxy_config(provider.url, state_dir=str(proxy.state_dir), budgets=tiny)
    prepared = await proxy.server.prepare_reload(new)
    assert prepared.needs_restart == []
    assert await outcome(proxy) == "ok"  # prepared, not in force
    assert prepared.commit is not None
    await prepared.commit()
    assert await outcome(proxy) == "budget_exceeded"
    assert proxy.server.config is new


async def test_reload_keeps_blocks_and_names_what_needs_a_restart(make_proxy, provider) -> None:
    proxy = await make_proxy()
    await proxy.server.gate.block("rogue", "test")
    new = proxy_config(
        provider.url,
        state_dir=str(proxy.state_dir),
        budgets={"store": "redis", "rate_limits": [{"requests_per_minute": 600}]},
    )
    new = new.model_copy(update={"proxy": new.proxy.model_copy(update={"endpoint": "127.0.0.1:1"})})
    prepared = await proxy.server.prepare_reload(new)
    assert prepared.needs_restart == ["proxy.endpoint", "budgets.store"]
    assert prepared.commit is not None
    await prepared.commit()
    assert await outcome(proxy, "rogue") == "agent_blocked"
    assert proxy.server.gate.config.store == "sqlite"  # until the restart
    assert proxy.server.gate.config.rate_limits[0].requests_per_minute == 600


async def test_reload_refused_when_preparing_fails(make_proxy, provider, monkeypatch) -> None:
    proxy = await make_proxy()
    tiny = {"budgets": [{"name": "tiny", "scope": "global", "limit_usd": 1e-9}]}
    new = proxy_config(provider.url, state_dir=str(proxy.state_dir), budgets=tiny)

    def broken(*args: object) -> None:
        raise ValueError("no such thing")

    monkeypatch.setattr("agent_sre_daemon.proxy.server.make_route", broken)
    with pytest.raises(ReloadError, match="no such thing"):
        await proxy.server.prepare_reload(new)
    assert await outcome(proxy) == "ok"


async def test_node_budgets_follow_the_node_name_on_reload(make_proxy, provider) -> None:
    budgets = {"budgets": [{"name": "per-node", "scope": "node", "limit_usd": 10}]}
    proxy = await make_proxy(node={"name": "n1"}, budgets=budgets)
    assert await outcome(proxy) == "ok"
    assert resource_node(proxy) == "n1"
    new = proxy_config(
        provider.url, state_dir=str(proxy.state_dir), node={"name": "n2"}, budgets=budgets
    )
    prepared = await proxy.server.prepare_reload(new)
    assert prepared.commit is not None
    await prepared.commit()
    assert await outcome(proxy) == "ok"
    assert resource_node(proxy) == "n2"
    subjects = {view.subject for view in await proxy.server.store.counters()}
    assert subjects == {"n1", "n2"}


class Outage:
    """A faults-slot stage: answers for one agent as the provider would when down."""

    name = "test-outage"
    slot = "faults"

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, float | None]] = []

    async def on_request(self, call) -> web.StreamResponse | None:
        if call.identity.agent_id == "victim":
            return web.json_response({"error": {"message": "overloaded"}}, status=503)
        return None

    async def on_response(self, call) -> None:
        self.seen.append((call.identity.agent_id, call.status, call.cost))


class Capture:
    """A capture-slot stage: keeps the chunks the client receives, delayed a little."""

    name = "test-capture"
    slot = "capture"

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    async def on_request(self, call) -> web.StreamResponse | None:
        async def tap(chunk: bytes) -> bytes:
            await asyncio.sleep(0)
            self.chunks.append(chunk)
            return chunk

        call.add_chunk_tap(tap)
        return None

    async def on_response(self, call) -> None:
        return None


async def test_stages_from_other_components_join_the_chain(make_proxy, provider) -> None:
    outage, capture = Outage(), Capture()
    budgets = {"budgets": [{"name": "b", "scope": "agent", "limit_usd": 10}]}
    proxy = await make_proxy(stages=[capture, outage], budgets=budgets)
    assert proxy.server.status()["proxy"]["stages"] == [
        "record",
        "identity",
        "delegation",
        "admission",
        "routing",
        "delegation_headers",
        "test-outage",
        "test-capture",
        "settle",
        "upstream",
    ]
    with pytest.raises(openai.InternalServerError):
        await sdk(proxy, "victim", retries=0).chat.completions.create(**BODY)
    assert provider.calls == 0
    attrs = proxy.span_attrs()
    assert attrs["http.response.status_code"] == 503 and attrs["error.type"] == "503"
    assert capture.chunks == []  # the fault answered before capture was entered
    # the reservation was given back: nothing spent, the budget still admits
    assert await proxy.server.store.counters() == []
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            proxy.url + "/openai/v1/chat/completions",
            json={**BODY, "stream": True},
            headers={"X-Agent-Id": "fine"},
        ) as r,
    ):
        body = await r.read()
    assert b"".join(capture.chunks) == body
    assert body.endswith(b"data: [DONE]\n\n")
    assert outage.seen[0] == ("victim", 503, None)
    agent, status, cost = outage.seen[1]
    assert (agent, status) == ("fine", 200)
    assert cost == pytest.approx(proxy.span_attrs()["agent_sre.cost_usd"])  # settled first


async def test_a_tap_can_rewrite_whole_bodies(make_proxy, provider) -> None:
    class Shout:
        name, slot = "shout", "capture"

        async def on_request(self, call) -> None:
            async def tap(chunk: bytes) -> bytes:
                return chunk.replace(b"Hello", b"HELLO")

            call.add_chunk_tap(tap)

        async def on_response(self, call) -> None:
            return None

    proxy = await make_proxy(stages=[Shout()])
    async with (
        aiohttp.ClientSession() as session,
        session.post(proxy.url + "/openai/v1/chat/completions", json=BODY) as r,
    ):
        data = json.loads(await r.read())
    assert data["choices"][0]["message"]["content"].startswith("HELLO")


async def test_stop_cuts_calls_at_the_deadline_and_settles_them(make_proxy, provider) -> None:
    provider.latency = 2.5
    budgets = {"budgets": [{"name": "b", "scope": "agent", "limit_usd": 10}]}
    proxy = await make_proxy(budgets=budgets)
    task = asyncio.ensure_future(outcome(proxy))
    for _ in range(100):
        if provider.requests:
            break
        await asyncio.sleep(0.02)
    clock = proxy.server.clock
    began = time.monotonic()
    await proxy.server.stop(clock.monotonic() + 0.3)
    assert time.monotonic() - began < 2.0  # one wait, against one deadline
    task.cancel()
    ledger = proxy.server.store.ledger  # type: ignore[attr-defined]
    charges = charges_for(
        proxy.server.config.budgets.budgets, CallIdentity("a1"), "test-node", clock.time()
    )
    assert ledger.window_total(charges[0]) == (0.0, 0.0)  # the reservation did not leak
    assert len(proxy.spans) == 1  # the cut call was recorded
