"""The chain runner: order in and out, who sees the way back, and cancellation."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiohttp import web

from agent_sre.gateway.outcome import DecidedBy
from agent_sre_daemon.proxy.call import AfterAnswer, Chain


class Step:
    def __init__(self, name: str, slot: str, log: list[str], answer: bool = False) -> None:
        self.name, self.slot, self.log, self.answer = name, slot, log, answer
        self.gate = asyncio.Event()
        self.hold = False

    async def on_request(self, call: object) -> web.StreamResponse | None:
        self.log.append(f"in:{self.name}")
        if self.hold:
            await self.gate.wait()
        return web.Response(status=299) if self.answer else None

    async def on_response(self, call: object) -> None:
        self.log.append(f"out:{self.name}")


def new_call(fault: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(status=0, response=None, decided_by=None, fault=fault, taps=[])


async def test_stages_run_in_slot_order_and_back_in_reverse() -> None:
    log: list[str] = []
    chain = Chain(
        [
            Step("up", "forward", log, answer=True),
            Step("fault", "faults", log),
            Step("who", "identity", log),
            Step("rec", "record", log),
        ]
    )
    call = new_call()
    response = await chain.run(call)  # type: ignore[arg-type]
    assert response.status == 299 and call.status == 299
    assert call.decided_by is DecidedBy.UPSTREAM
    assert log == [
        "in:rec",
        "in:who",
        "in:fault",
        "in:up",
        "out:up",
        "out:fault",
        "out:who",
        "out:rec",
    ]


async def test_only_stages_entered_see_the_way_back() -> None:
    log: list[str] = []
    chain = Chain(
        [
            Step("rec", "record", log),
            Step("deny", "admission", log, answer=True),
            Step("up", "forward", log, answer=True),
        ]
    )
    await chain.run(new_call())  # type: ignore[arg-type]
    assert log == ["in:rec", "in:deny", "out:deny", "out:rec"]


async def test_a_cancelled_call_still_goes_back_through_every_stage_entered() -> None:
    log: list[str] = []
    up = Step("up", "forward", log, answer=True)
    up.hold = True
    chain = Chain([Step("admit", "admission", log), up])
    task = asyncio.ensure_future(chain.run(new_call()))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.gather(*chain.unwinding)
    assert log == ["in:admit", "in:up", "out:up", "out:admit"]
    assert not chain.unwinding


async def test_a_failing_stage_on_the_way_back_does_not_stop_the_others(caplog) -> None:
    log: list[str] = []

    class Broken(Step):
        async def on_response(self, call: object) -> None:
            raise RuntimeError("boom")

    chain = Chain(
        [
            Step("admit", "admission", log),
            Broken("bad", "capture", log),
            Step("up", "forward", log, answer=True),
        ]
    )
    await chain.run(new_call())  # type: ignore[arg-type]
    assert log[-1] == "out:admit"
    assert "proxy stage bad failed on the way back" in caplog.text


@pytest.mark.parametrize(
    ("slot", "fault", "decider"),
    [
        ("forward", None, DecidedBy.UPSTREAM),
        ("forward", "latency", DecidedBy.UPSTREAM),  # a delay leaves the answer the upstream's
        ("forward", "slow_stream", DecidedBy.UPSTREAM),
        ("forward", "malformed_response", DecidedBy.CHAOS),  # the answer was changed
        ("faults", "error", DecidedBy.CHAOS),
        ("capture", None, DecidedBy.REPLAY),
        ("admission", None, DecidedBy.REFUSAL),
        ("identity", None, DecidedBy.REFUSAL),
    ],
)
async def test_the_chain_records_who_decided_the_answer(
    slot: str, fault: str | None, decider: DecidedBy
) -> None:
    call = new_call(fault)
    await Chain([Step("answers", slot, [], answer=True)]).run(call)  # type: ignore[arg-type]
    assert call.decided_by is decider


async def test_a_call_cut_inside_a_stage_is_decided_by_that_stage() -> None:
    class Cut(Step):
        async def on_request(self, call: object) -> web.StreamResponse | None:
            raise ConnectionResetError("client left mid-stream")

    call = new_call()
    with pytest.raises(ConnectionResetError):
        await Chain([Cut("up", "forward", [])]).run(call)  # type: ignore[arg-type]
    assert call.decided_by is DecidedBy.UPSTREAM


class Settling(Step):
    """A stage whose way back waits (as a ledger write does) until ``done`` is set."""

    def __init__(self, name: str, slot: str, log: list[str]) -> None:
        super().__init__(name, slot, log)
        self.done = asyncio.Event()
        self.waiting = asyncio.Event()

    async def on_response(self, call: object) -> None:
        self.log.append(f"out:{self.name}:waits")
        self.waiting.set()
        await self.done.wait()
        await asyncio.sleep(0)  # a bare yield too: the rest is driven as a task would
        self.log.append(f"out:{self.name}")


async def test_a_way_back_that_waits_finishes_even_when_the_handler_is_cancelled_meanwhile() -> (
    None
):
    log: list[str] = []
    settle = Settling("settle", "admission", log)
    chain = Chain([Step("rec", "record", log), settle, Step("up", "forward", log, answer=True)])
    task = asyncio.ensure_future(chain.run(new_call()))  # type: ignore[arg-type]
    await settle.waiting.wait()
    assert len(chain.unwinding) == 1  # the rest of the way back is a task of its own
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log[-1] == "out:settle:waits"
    settle.done.set()
    await asyncio.gather(*chain.unwinding)
    assert log[-2:] == ["out:settle", "out:rec"]
    assert not chain.unwinding


async def test_a_way_back_that_waits_hands_the_answer_over_once_it_is_done() -> None:
    log: list[str] = []
    settle = Settling("settle", "admission", log)
    chain = Chain([settle, Step("up", "forward", log, answer=True)])
    task = asyncio.ensure_future(chain.run(new_call()))  # type: ignore[arg-type]
    await settle.waiting.wait()
    await asyncio.sleep(0.01)
    assert not task.done()
    settle.done.set()
    response = await task
    assert response.status == 299 and log[-1] == "out:settle"


async def test_a_way_back_that_fails_after_waiting_is_logged_and_the_others_still_run(
    caplog,
) -> None:
    log: list[str] = []

    class BrokenLater(Settling):
        async def on_response(self, call: object) -> None:
            await asyncio.sleep(0)
            raise RuntimeError("boom")

    chain = Chain(
        [
            Step("rec", "record", log),
            BrokenLater("bad", "admission", log),
            Step("up", "forward", log, answer=True),
        ]
    )
    response = await chain.run(new_call())  # type: ignore[arg-type]
    assert response.status == 299 and log[-1] == "out:rec"
    assert "proxy stage bad failed on the way back" in caplog.text


async def test_what_is_put_off_runs_after_the_current_step_in_order_and_survives_a_failure(
    caplog,
) -> None:
    after = AfterAnswer("testing")
    ran: list[int] = []

    def broken() -> None:
        raise RuntimeError("boom")

    after.add(ran.append, 1)
    after.add(broken)
    after.add(ran.append, 2)
    assert ran == [] and len(after) == 3  # nothing yet: the answer goes first
    await asyncio.sleep(0)
    assert ran == [1, 2] and len(after) == 0
    assert "testing after a proxied call's answer failed" in caplog.text


async def test_what_is_put_off_runs_at_once_when_asked_and_not_twice() -> None:
    after = AfterAnswer("testing")
    ran: list[int] = []
    after.add(ran.append, 1)
    after.run()  # as on stop
    await asyncio.sleep(0)
    assert ran == [1]
