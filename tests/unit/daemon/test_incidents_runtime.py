"""The incidents component in-process on a fake clock: signals from the bus become
incidents, a failing action is recorded and does not stop the engine, an escalation ends
the Alertmanager alert of the quieter severity, a receiver that is down holds back its
newer notifications (order) while others are delivered, bad admin input is refused."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agent_sre.config import Config
from agent_sre.signals import Severity, Signal, SignalState
from agent_sre_daemon.clock import ManualClock
from agent_sre_daemon.incidents.runtime import IncidentsRuntime
from tests.support.context import node_context
from tests.support.receivers import Receiver, free_port

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path


def runtime(tmp_path: Path, **sections: Any) -> IncidentsRuntime:
    config = Config.model_validate({"state_dir": str(tmp_path / "state"), **sections})
    clock = ManualClock()
    context = node_context(config, clock, node_name="n1")

    async def broken(params: Mapping[str, str]) -> str:
        raise RuntimeError("the rollout store is read-only")

    context.register_action("rollback_rollout", broken)
    return IncidentsRuntime(context)


def slo(at: float, severity: Severity, state: SignalState = SignalState.FIRING) -> Signal:
    return Signal("slo_status", "slo", severity, at, "SLO llm burning", {"slo": "llm"}, state)


async def settle(engine: IncidentsRuntime) -> None:
    for _ in range(50):
        await asyncio.sleep(0.01)
        if engine._subscription is None or not len(engine._subscription):
            break
    await asyncio.sleep(0.05)


async def test_signals_actions_escalation_and_ordered_delivery(tmp_path: Path) -> None:
    am, down_port = Receiver(), free_port()
    engine = runtime(
        tmp_path,
        incidents={
            "rules": [{"name": "undo", "match": {"types": ["slo_status"]},
                       "actions": [{"action": "rollback_rollout"}]}]
        },
        alerting={
            "retry": {"attempts": 1, "initial_interval": "10ms", "max_interval": "10ms"},
            "receivers": [
                {"name": "am", "type": "alertmanager", "url": am.url},
                {"name": "down", "type": "webhook", "url": f"http://127.0.0.1:{down_port}"},
            ],
        },
    )  # fmt: skip
    clock = engine.clock
    assert isinstance(clock, ManualClock)
    await engine.start()
    try:
        bus = engine.context.bus
        bus.publish(slo(clock.time(), Severity.WARNING))
        await settle(engine)
        bus.publish(slo(clock.time(), Severity.CRITICAL))
        await settle(engine)
        [incident] = engine.book.incidents.values()
        assert incident.severity is Severity.CRITICAL
        actions = [e for e in incident.timeline if e.kind == "action"]
        assert actions[0].details["outcome"] == "failed"
        assert "the rollout store is read-only" in actions[0].message
        assert len(actions) == 1  # the rule cools down (counted, not in the timeline)
        assert engine.metrics.actions.labels("rollback_rollout", "cooling_down")._value.get() == 1

        for _ in range(200):  # the background delivery
            if len(am.requests) >= 2 and engine.metrics.failed.labels("down")._value.get():
                break
            await asyncio.sleep(0.02)
        sent = [json.loads(body) for _, _, body in am.requests]
        assert [a["labels"]["severity"] for a in sent[0]] == ["warning"]
        # the escalation: the critical alert, and the warning one ended
        assert [a["labels"]["severity"] for a in sent[1]] == ["critical", "warning"]
        assert sent[1][1]["endsAt"] < sent[1][0]["endsAt"]
        metrics = engine.metrics
        assert metrics.failed.labels("down")._value.get() >= 1
        assert metrics.sent.labels("am")._value.get() == 2
        # the receiver that is down keeps both its notifications, in order, for later
        assert await engine.store.pending() == 2
        clock.advance(3600)
        assert [p.receiver for p in await engine.store.due("down", clock.time())] == [
            "down",
            "down",
        ]
    finally:
        await engine.stop(clock.monotonic() + 5)
        am.stop()


async def test_admin_input_is_checked(tmp_path: Path) -> None:
    engine = runtime(tmp_path)
    await engine.start()
    try:
        engine.context.bus.publish(slo(engine.clock.time(), Severity.CRITICAL))
        await settle(engine)
        app = web.Application()
        app.add_routes(engine.admin_routes())
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            bad = await client.post("/v1/incidents/inc-1/ack", data=b"{not json")
            assert bad.status == 400
            assert (await bad.json())["error"]["type"] == "invalid_argument"
            ok = await client.post("/v1/incidents/inc-1/resolve", json={"by": "ana"})
            assert (await ok.json())["resolved_by"] == "ana"
            missing = await client.get("/v1/incidents/inc-9/postmortem")
            assert missing.status == 404
            circuits = await client.get("/v1/circuits")
            assert await circuits.json() == {"circuits": []}
    finally:
        await engine.stop(engine.clock.monotonic() + 5)


async def test_reload_swaps_rules_receivers_and_breakers(tmp_path: Path) -> None:
    engine = runtime(tmp_path)
    await engine.start()
    try:
        new = Config.model_validate(
            {
                "state_dir": str(tmp_path / "elsewhere"),
                "incidents": {
                    "enabled": False,
                    "rules": [{"name": "r", "actions": [{"action": "notify"}]}],
                    "circuit_breakers": [{"name": "b"}],
                },
                "alerting": {"receivers": [{"name": "s", "type": "slack", "url": "http://x"}]},
            }
        )
        prepared = await engine.prepare_reload(new)
        assert prepared.needs_restart == ["state_dir (incidents)", "incidents.enabled"]
        assert prepared.commit is not None
        await prepared.commit()
        assert [r.name for r in engine.rules.rules] == ["r"]
        assert list(engine.notifier.receivers) == ["s"]
        assert [s.name for s in engine.breakers.specs] == ["b"]
        assert engine.status() == {
            "incidents": {"open": 0, "circuits_open": 0, "agents_throttled": 0}
        }
    finally:
        await engine.stop(engine.clock.monotonic() + 5)


async def test_disabled_incidents_ignore_the_bus(tmp_path: Path) -> None:
    engine = runtime(tmp_path, incidents={"enabled": False})
    await engine.start()
    try:
        engine.context.bus.publish(slo(engine.clock.time(), Severity.CRITICAL))
        await asyncio.sleep(0.05)
        assert engine.book.incidents == {}
    finally:
        await engine.stop(engine.clock.monotonic() + 5)


async def test_firing_incidents_are_re_sent_to_alertmanager(tmp_path: Path) -> None:
    engine = runtime(
        tmp_path,
        alerting={
            "resend_interval": "1m",
            "receivers": [
                {"name": "am", "type": "alertmanager", "url": "http://127.0.0.1:9"},
                {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9"},
            ],
        },
    )
    clock = engine.clock
    assert isinstance(clock, ManualClock)
    change = engine.book.observe(slo(clock.time(), Severity.CRITICAL), clock.time())[0]
    assert [r for r, _ in engine.notifier.payloads(change, clock.time())] == ["am", "hook"]
    open_now = engine.book.open_incidents()
    assert engine.notifier.resends(open_now, clock.time() + 59) == []
    [(receiver, body)] = engine.notifier.resends(open_now, clock.time() + 60)
    assert receiver == "am"  # only Alertmanager forgets alerts that are not re-sent
    assert json.loads(body)[0]["labels"]["incident"] == "inc-1"


async def test_slo_incidents_missed_by_a_restart_are_reconciled(tmp_path: Path) -> None:
    engine = runtime(tmp_path, incidents={"group_by": ["slo"]})  # an incident per SLO
    now = engine.clock.time()
    for name in ("llm", "gone", "still"):
        signal = Signal("slo_status", "slo", Severity.CRITICAL, now, f"{name} burning",
                        {"slo": name, "agent_id": "a"})  # fmt: skip
        engine.book.observe(signal, now)
    assert len(engine.book.open_incidents()) == 3
    assert engine.reconcile_slos(now) == []  # no SLO engine on this node: nothing to say

    def instance(status: str) -> Any:
        return SimpleNamespace(labels={"agent_id": "a"}, status=SimpleNamespace(value=status))

    reports = [
        SimpleNamespace(name="llm", instances=[instance("HEALTHY")]),
        SimpleNamespace(name="still", instances=[instance("CRITICAL")]),
    ]
    engine.context.provide("slo", SimpleNamespace(reports=lambda at: reports))
    resolved = {c.incident.title for c in engine.reconcile_slos(now) if c.event == "resolved"}
    assert resolved == {"llm burning", "gone burning"}
    assert [i.title for i in engine.book.open_incidents()] == ["still burning"]
