"""The notification client in-process on a fake clock, against small local servers: retries
are bounded (a notification undelivered for ``give_up_after`` goes to the dead letter), a
``Retry-After`` is honoured but never past ``max_interval``, the dead letter keeps only the
newest ``dead_letter_limit``, what is queued for a receiver no longer configured is set
aside at start and at a reload, a receiver echoing its routing key does not get it stored,
and a stop is not held by a receiver that hangs."""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agent_sre.config import Config
from agent_sre_daemon.clock import ManualClock
from agent_sre_daemon.incidents.notify import retry_after
from agent_sre_daemon.incidents.runtime import IncidentsRuntime
from agent_sre_daemon.incidents.store import IncidentStore
from tests.support.context import node_context
from tests.support.receivers import Receiver, free_port

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

FAST = {"attempts": 1, "initial_interval": "10ms", "max_interval": "30s", "give_up_after": "1h"}


def runtime(tmp_path: Path, receivers: list[dict[str, Any]], **alerting: Any) -> IncidentsRuntime:
    config = Config.model_validate(
        {
            "state_dir": str(tmp_path / "state"),
            # the dead letters' signals would open incidents, notified too: not here
            "incidents": {"enabled": False},
            "alerting": {"retry": FAST, "receivers": receivers, **alerting},
        }
    )
    return IncidentsRuntime(node_context(config, ManualClock(), node_name="n1"))


async def until(check: Callable[[], Any], what: str) -> Any:
    for _ in range(500):
        found = check()
        if found:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def outbox(engine: IncidentsRuntime) -> list[tuple[int, float]]:
    """(attempts, due_at) of every queued notification."""
    rows = engine.store.db.execute("SELECT attempts, due_at FROM outbox ORDER BY id")
    return [(int(r[0]), float(r[1])) for r in rows]


def signals(engine: IncidentsRuntime) -> list[tuple[str, str]]:
    return [
        (s.labels["receiver"], s.labels["reason"])
        for s in engine.context.bus.recent()
        if s.type == "notification_dead_lettered"
    ]


async def test_a_receiver_down_too_long_is_given_up_on(tmp_path: Path) -> None:
    engine = runtime(tmp_path, [{"name": "down", "type": "webhook",
                                 "url": f"http://127.0.0.1:{free_port()}/"}])  # fmt: skip
    clock = engine.clock
    assert isinstance(clock, ManualClock)
    await engine.start()
    try:
        await engine.notifier.enqueue([("down", b'{"n": 1}')])
        await until(lambda: engine.metrics.failed.labels("down")._value.get(), "a try")
        rows = await until(
            lambda: engine.store.db.execute(
                "SELECT attempts FROM outbox WHERE attempts > 0"
            ).fetchall(),
            "a postponed round",
        )
        assert rows == [(1,)]
        assert await engine.store.dead_count() == 0
        clock.advance(3600)  # give_up_after: the next failed round is the last
        engine.notifier._wakes["down"].set()
        await until(lambda: engine.metrics.dead_letters._value.get() == 1, "the dead letter")
        [letter] = await engine.store.dead_letters()
        assert (letter.receiver, letter.reason, letter.attempts) == ("down", "gave_up", 2)
        assert "undelivered for 1h" in letter.error
        assert json.loads(letter.body) == {"n": 1}
        assert await engine.store.pending() == 0
        assert signals(engine) == [("down", "gave_up")]
    finally:
        await engine.stop(clock.monotonic() + 5)


async def test_retry_after_is_honoured_within_max_interval(tmp_path: Path) -> None:
    busy = Receiver()
    busy.answers = [(429, {"Retry-After": "99999999999999999999"})]
    engine = runtime(tmp_path, [{"name": "busy", "type": "webhook", "url": busy.url}])
    clock = engine.clock
    assert isinstance(clock, ManualClock)
    await engine.start()
    try:
        now = clock.time()
        await engine.notifier.enqueue([("busy", b"{}")])
        [(attempts, due)] = await until(
            lambda: engine.store.db.execute(
                "SELECT attempts, due_at FROM outbox WHERE attempts > 0").fetchall(),
            "the postponed round",
        )  # fmt: skip
        assert attempts == 1
        assert due == pytest.approx(now + 30), "Retry-After, bounded by max_interval"
        clock.advance(30)
        engine.notifier._wakes["busy"].set()
        await until(lambda: engine.metrics.sent.labels("busy")._value.get() == 1, "delivery")
        assert len(busy.requests) == 2
    finally:
        await engine.stop(clock.monotonic() + 5)
        busy.stop()


def test_retry_after_values() -> None:
    now = time.time()
    assert retry_after("7", now) == 7
    assert retry_after(" 0 ", now) == 0
    assert retry_after("9" * 400, now) == 10**9  # bounded, no overflow
    assert retry_after(None, now) is None
    assert retry_after("", now) is None
    for bad in ("-5", "1.5", "nan", "inf", "soon", "Wed, 99 Foo 2026 00:00:00 GMT"):
        assert retry_after(bad, now) is None, bad
    http_date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 120))
    assert retry_after(http_date, now) == pytest.approx(120, abs=2)
    past = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now - 120))
    assert retry_after(past, now) == 0
    assert all(math.isfinite(retry_after(v, now) or 0) for v in ("1", http_date))


async def test_the_dead_letter_is_bounded_and_echoed_secrets_are_not_stored(
    tmp_path: Path,
) -> None:
    key = "R0UT1NG-secret-key"

    async def echo(request: web.Request) -> web.Response:
        body = await request.json()
        return web.Response(status=400, text=f"bad routing key {body['routing_key']}" + "x" * 10**5)

    app = web.Application()
    app.router.add_post("/enqueue", echo)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        url = str(client.make_url("/enqueue"))
        engine = runtime(
            tmp_path,
            [{"name": "pd", "type": "pagerduty", "url": url, "routing_key": key}],
            dead_letter_limit=3,
        )
        await engine.start()
        try:
            for index in range(5):
                await engine.notifier.enqueue([("pd", json.dumps({"n": index}).encode())])
            await until(
                lambda: engine.metrics.dead_lettered.labels("pd", "refused")._value.get() == 5,
                "five refusals",
            )
            letters = await engine.store.dead_letters()
            assert [json.loads(d.body)["n"] for d in letters] == [4, 3, 2], "the newest 3"
            assert engine.metrics.dead_letters._value.get() == 3
            for letter in letters:
                assert key not in letter.error and "<redacted>" in letter.error
                assert len(letter.error) <= 500, "a refusal's body is read only so far"
            assert key.encode() not in (tmp_path / "state" / "incidents.sqlite").read_bytes()
        finally:
            await engine.stop(engine.clock.monotonic() + 5)


async def test_notifications_for_receivers_no_longer_configured_are_set_aside(
    tmp_path: Path,
) -> None:
    # a previous run queued notifications for "old", since removed from the file
    store = IncidentStore(tmp_path / "state" / "incidents.sqlite")
    await store.open()
    await store.enqueue([("old", b'{"a": 1}'), ("old", b'{"a": 2}'), ("kept", b"{}")], 1.0)
    await store.close()
    kept = Receiver()
    engine = runtime(tmp_path, [{"name": "kept", "type": "slack", "url": kept.url}])
    await engine.start()
    try:
        await until(lambda: kept.requests, "the kept receiver's delivery")
        letters = await engine.store.dead_letters()
        assert [(d.receiver, d.reason) for d in letters] == [("old", "receiver_gone")] * 2
        assert signals(engine) == [("old", "receiver_gone")]
        assert engine.metrics.dead_lettered.labels("old", "receiver_gone")._value.get() == 2

        # a reload that removes "kept" while a notification for it waits
        kept.hold.clear()
        kept.status = 503
        await engine.notifier.enqueue([("kept", b'{"b": 1}')])
        await until(lambda: len(kept.requests) == 2, "the try that hangs")
        new = Config.model_validate(
            {"state_dir": str(tmp_path / "state"), "incidents": {"enabled": False}}
        )
        prepared = await engine.prepare_reload(new)
        assert prepared.commit is not None
        await prepared.commit()
        assert engine.notifier._workers == {}
        letters = await engine.store.dead_letters("kept")
        assert [(d.receiver, d.reason) for d in letters] == [("kept", "receiver_gone")]
        assert await engine.store.pending() == 0
    finally:
        kept.stop()
        await engine.stop(engine.clock.monotonic() + 5)


async def test_a_hanging_receiver_does_not_hold_the_stop(tmp_path: Path) -> None:
    hang, fine = Receiver(), Receiver()
    hang.hold.clear()
    engine = runtime(
        tmp_path,
        [
            {"name": "hang", "type": "webhook", "url": hang.url, "timeout": "1h"},
            {"name": "fine", "type": "webhook", "url": fine.url},
        ],
    )
    await engine.start()
    try:
        await engine.notifier.enqueue([("hang", b"{}"), ("fine", b"{}")])
        await until(lambda: hang.requests and fine.requests, "both tries")
        await engine.notifier.enqueue([("fine", b'{"second": 1}')])
        await until(lambda: len(fine.requests) == 2, "the second, while the first hangs")
    finally:
        # the stop's last round gives up on the hanging try at its deadline (else: 1h)
        await engine.stop(engine.clock.monotonic() + 3)
        hang.stop()
        fine.stop()
    store = IncidentStore(tmp_path / "state" / "incidents.sqlite")
    await store.open()
    try:
        assert [p.body for p in await store.due("hang", engine.clock.time())] == [b"{}"]
        assert await store.pending() == 1, "what the hanging receiver did not take stays"
    finally:
        await store.close()
