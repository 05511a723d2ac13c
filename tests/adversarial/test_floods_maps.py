"""Every map kept per client-chosen id, driven through its entry point with many distinct ids:
it stays within its bound, and everything it dropped was counted.

The maps are listed once, in :data:`agent_sre.bounded.REGISTRY`; each has a driver here, and a
map whose name is not registered cannot be built (``BoundedMap`` refuses it) nor counted
(the source scan below), so a new one cannot skip this test."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client import CollectorRegistry

from agent_sre.bounded import REGISTRY
from agent_sre.cost.budgets import CallIdentity
from agent_sre.cost.spec import AnomalySpec, BudgetsConfig, RateLimitSpec
from agent_sre.gateway.outcome import DecidedBy
from agent_sre.incidents.spec import CircuitBreakerSpec, IncidentsConfig, RuleSpec
from agent_sre.signals import Severity, Signal

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).parents[2]
CAP = 50
IDS = 3 * CAP
"""Distinct ids sent to each map: three times its (lowered) cap."""


class Heard:
    """An ``on_evict`` that keeps what each map reported."""

    def __init__(self) -> None:
        self.keys: dict[str, list[Any]] = {}

    def __call__(self, name: str, key: Any) -> None:
        self.keys.setdefault(name, []).append(key)


def ids(prefix: str = "spoofed") -> list[str]:
    return [f"{prefix}-{index}" for index in range(IDS)]


def agent_signal(agent: str, at: float = 0.0) -> Signal:
    return Signal(type="budget_refused", source="budgets", severity=Severity.WARNING, at=at,
                  message=f"agent {agent} refused", labels={"agent_id": agent})  # fmt: skip


# -- drivers: each returns (entries left, distinct keys put) -----------------------------


def drive_ledger(heard: Heard, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    from agent_sre.cost.ledger import BudgetLedger, Charge

    ledger = BudgetLedger(heard, max_counters=CAP)
    for agent in ids():
        ledger.reserve((Charge("per-agent", agent, 0, 86400, 1.0, True),), 0.001)
    return len(ledger), IDS


def drive_pacing(heard: Heard, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    from agent_sre.cost import pacing

    monkeypatch.setattr(pacing, "MAX_AGENTS", CAP)
    pacer = pacing.SpendPacer(on_evict=heard)
    for agent in ids():
        pacer.settled(agent, 0.01, 0.0)
    return len(pacer._spend), IDS


def drive_rate_limits(heard: Heard, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    from agent_sre.cost import ratelimit

    monkeypatch.setattr(ratelimit, "MAX_BUCKETS", CAP)
    limiter = ratelimit.RateLimiter([RateLimitSpec(requests_per_minute=60)], heard)
    for agent in ids():
        limiter.check(agent, 10, 0.0)
    return len(limiter._buckets), IDS


def drive_budget_signals(heard: Heard, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    from agent_sre.cost import guard
    from agent_sre.cost.ledger import Charge

    monkeypatch.setattr(guard, "MAX_FIRED", CAP)
    config = BudgetsConfig.model_validate(
        {
            "budgets": [
                {"name": "per-agent", "scope": "agent", "limit_usd": 1.0, "soft_thresholds": []}
            ]
        }  # fmt: skip
    )
    cost_guard = guard.CostGuard(config, "node", heard)
    for agent in ids():
        charge = Charge("per-agent", agent, 0, 86400, 1.0, True)
        cost_guard.settled(CallIdentity(agent_id=agent), 2.0, [(charge, 2.0)], 0.0)
    return len(cost_guard._fired), IDS


def drive_refusal_digest(heard: Heard, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    from agent_sre.cost.guard import Denial
    from agent_sre.cost.refusals import RefusalDigest

    digest = RefusalDigest(max_tracked=CAP, on_evict=heard)
    denial = Denial("budget_exceeded", "over", budget="per-agent", rule="per-agent")
    signals = [digest.refused(agent, denial, float(index)) for index, agent in enumerate(ids())]
    assert all(signal is not None for signal in signals)  # each agent's first refusal signals
    return len(digest), IDS


def drive_anomaly(heard: Heard, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    from agent_sre.cost import anomaly

    monkeypatch.setattr(anomaly, "MAX_AGENTS", CAP)
    detector = anomaly.SpendAnomalyDetector(AnomalySpec(), heard)
    for agent in ids():
        detector.observe(agent, 0.01, 0.0)
    return len(detector._series), IDS


def drive_proxy_agents(heard: Heard, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    from agent_sre.cost.pricing import Pricer
    from agent_sre_daemon.clock import SYSTEM_CLOCK
    from agent_sre_daemon.proxy import gate
    from agent_sre_daemon.proxy.metrics import ProxyMetrics
    from agent_sre_daemon.signals import SignalBus
    from agent_sre_daemon.stores.ledger_sqlite import SqliteLedgerStore

    monkeypatch.setattr(gate, "MAX_AGENTS", CAP)
    registry = CollectorRegistry()
    metrics = ProxyMetrics(registry)
    monkeypatch.setattr(metrics, "evicted", heard)
    budget_gate = gate.BudgetGate(
        BudgetsConfig(), SqliteLedgerStore(Path("/nonexistent/ledger.sqlite")), Pricer(),
        metrics, "node", SYSTEM_CLOCK, SignalBus(registry),
    )  # fmt: skip
    for agent in ids():
        plan = SimpleNamespace(worst_case_tokens=0, llm_call=False, delegation=False)
        asyncio.run(budget_gate.admit(plan, CallIdentity(agent_id=agent), 0.0))  # type: ignore[arg-type]  # fmt: skip
    return len(budget_gate._agents), IDS


def drive_redis_catch_up(heard: Heard, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    import socket

    from agent_sre.cost.ledger import Charge, Reservation
    from agent_sre_daemon.clock import ManualClock
    from agent_sre_daemon.stores import ledger_redis

    monkeypatch.setattr(ledger_redis, "MAX_CATCH_UP", CAP)
    with socket.socket() as sock:  # a port nothing listens on: Redis is down
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = ledger_redis.RedisLedgerStore(
        f"redis://127.0.0.1:{port}/0", "test", "fail_open", clock=ManualClock(), on_evict=heard
    )

    async def calls() -> None:
        await store.open()
        for task in ids("task"):
            charge = Charge("per-task", task, 0, 1, 10.0, True)
            reservation = await store.reserve((charge,), 0.01)
            assert isinstance(reservation, Reservation)
            await store.settle(reservation, 0.01)
        await store._client.aclose()

    asyncio.run(calls())
    return len(store._pending), IDS


def drive_circuits(heard: Heard, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    from agent_sre_daemon.clock import SYSTEM_CLOCK
    from agent_sre_daemon.incidents import breaker
    from agent_sre_daemon.incidents.metrics import IncidentMetrics
    from agent_sre_daemon.signals import SignalBus

    monkeypatch.setattr(breaker, "MAX_CIRCUITS", CAP)
    registry = CollectorRegistry()
    spec = CircuitBreakerSpec.model_validate({"name": "per-agent", "per": "agent"})
    stage = breaker.CircuitBreakerStage(
        [spec], SYSTEM_CLOCK, SignalBus(registry), IncidentMetrics(registry), heard
    )

    async def calls() -> None:
        for agent in ids():
            call = SimpleNamespace(
                route=SimpleNamespace(name="openai"), plan=SimpleNamespace(tool_name=None),
                identity=SimpleNamespace(agent_id=agent), decided_by=DecidedBy.UPSTREAM,
                status=200, trace=None,
            )  # fmt: skip
            await stage.on_request(call)  # type: ignore[arg-type]
            await stage.on_response(call)  # type: ignore[arg-type]

    asyncio.run(calls())
    return len(stage.circuits), IDS


def drive_throttles(heard: Heard, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    from agent_sre.incidents.throttles import PutBy
    from agent_sre_daemon.clock import SYSTEM_CLOCK
    from agent_sre_daemon.incidents import throttle

    monkeypatch.setattr(throttle, "MAX_THROTTLES", CAP)
    stage = throttle.ThrottleStage(SYSTEM_CLOCK, on_evict=heard)

    async def puts() -> None:
        for index, agent in enumerate(ids()):
            await stage.put(agent, 6.0, 600.0 + index, PutBy())

    asyncio.run(puts())
    # the newest throttles hold; the ones lapsing soonest were lifted
    assert f"spoofed-{IDS - 1}" in stage.throttled and "spoofed-0" not in stage.throttled
    return len(stage.throttled), IDS


def drive_rule_cooldowns(heard: Heard, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    from agent_sre.incidents import rules
    from agent_sre.incidents.book import Change
    from agent_sre.incidents.model import Incident

    monkeypatch.setattr(rules, "MAX_COOLDOWNS", CAP)
    rule = RuleSpec.model_validate(
        {
            "name": "throttle",
            "actions": [{"action": "throttle_agent", "params": {"agent_id": "{agent_id}"}}],
        }  # fmt: skip
    )
    book = rules.RuleBook([rule], heard)
    incident = Incident("inc-1", "g", "t", "budget_refused", "budgets", Severity.WARNING, 0.0)
    for agent in ids():
        book.plan(Change(incident, "signal", agent_signal(agent)), 0.0)
    return len(book._last_run), IDS


def drive_incidents_open(heard: Heard, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    from agent_sre.incidents import book as book_module

    monkeypatch.setattr(book_module, "MAX_OPEN_INCIDENTS", CAP)
    config = IncidentsConfig.model_validate({"group_by": ["agent_id"]})
    incidents = book_module.IncidentBook(config, on_evict=heard)
    for agent in ids():
        incidents.observe(agent_signal(agent), 0.0)
    # a critical signal still opens one, closing a quieter incident to make room
    critical = Signal(type="circuit_state", source="circuit_breaker", severity=Severity.CRITICAL,
                      at=1.0, message="open", labels={"agent_id": "real"})  # fmt: skip
    assert [c.event for c in incidents.observe(critical, 1.0)] == ["resolved", "opened"]
    return len(incidents.open_incidents()), IDS + 1


def drive_incident_agents(heard: Heard, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    from agent_sre.incidents import book as book_module

    monkeypatch.setattr(book_module, "MAX_AGENTS_PER_INCIDENT", CAP)
    incidents = book_module.IncidentBook(IncidentsConfig(), on_evict=heard)
    for agent in ids():
        incidents.observe(agent_signal(agent), 0.0)
    [incident] = incidents.open_incidents()
    return len(incident.agents), IDS


def drive_incident_signals(heard: Heard, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    from agent_sre.incidents import book as book_module

    monkeypatch.setattr(book_module, "MAX_ACTIVE_SIGNALS", CAP)
    incidents = book_module.IncidentBook(IncidentsConfig(), on_evict=heard)
    for agent in ids():
        incidents.observe(agent_signal(agent), 0.0)
    [incident] = incidents.open_incidents()
    assert len(incident.values) <= CAP
    return len(incident.active), IDS


def drive_shadow_in_flight(heard: Heard, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    from prometheus_client import Counter

    from agent_sre.cost.pricing import Pricer
    from agent_sre.delivery.spec import RolloutSpec
    from agent_sre_daemon.clock import SYSTEM_CLOCK
    from agent_sre_daemon.delivery import shadow

    monkeypatch.setattr(shadow, "MAX_IN_FLIGHT", CAP)
    registry = CollectorRegistry()
    cost = Counter("c", "c", ["rollout"], registry=registry)
    requests = Counter("r", "r", ["rollout", "variant", "result"], registry=registry)

    async def flood() -> int:
        hanging: list[asyncio.StreamWriter] = []

        async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            hanging.append(writer)  # reads nothing, answers nothing

        server = await asyncio.start_server(hang, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        caller = shadow.ShadowCaller(SYSTEM_CLOCK, Pricer(), cost, requests, heard)
        await caller.open()
        spec = RolloutSpec.model_validate({
            "name": "shadowed", "route": "openai", "vary": "upstream",
            "candidate": f"http://127.0.0.1:{port}", "mode": "shadow",
            "steps": [{"weight": 100, "duration": "1h"}],
        })  # fmt: skip
        rollout = SimpleNamespace(name="shadowed", spec=spec)
        sent = 0
        for index in range(IDS):
            call = SimpleNamespace(
                plan=SimpleNamespace(body=b"{}", priced=False, stream=False, model="",
                                     provider="", pricing="", priced_as="",
                                     max_output_tokens=None, input_tokens_estimate=0, choices=1),
                route=SimpleNamespace(sign=None),
                upstream_url="", upstream_headers={}, path=f"/v1/x/{index}", query="",
                request=SimpleNamespace(method="POST"), identity=SimpleNamespace(task_id=""),
            )  # fmt: skip
            sent += caller.mirror(rollout, call, lambda call, model: None)  # type: ignore[arg-type]
        await asyncio.sleep(0.2)
        in_flight = caller.in_flight["shadowed"]
        assert sent == in_flight == CAP
        await caller.close(SYSTEM_CLOCK.monotonic())  # cut: what was reserved is given back
        assert caller.in_flight["shadowed"] == 0 and caller.reserved["shadowed"] == 0
        server.close()
        for writer in hanging:
            writer.close()
        return in_flight

    return asyncio.run(flood()), IDS


def drive_fleet_agents(heard: Heard, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """Spans naming spoofed agent ids, as the fleet's span observer sees them."""
    from agent_sre.fleet.agents import AgentRegistry
    from agent_sre.tracing.conventions import AgentSpanKind
    from agent_sre.tracing.view import AgentSpan

    registry = AgentRegistry(CAP, heard)
    for index, agent in enumerate(ids()):
        span = AgentSpan(AgentSpanKind.LLM_INFERENCE, True, "x", b"t", b"s", 0, 1, False,
                         {"agent.id": agent, "agent.version": agent})  # fmt: skip
        registry.observe(span, float(index))
    assert len(registry.rows(float(IDS))) <= CAP
    return len(registry.agents), IDS


def drive_certification_versions(heard: Heard, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    from agent_sre.certification.counting import CertificationCounter
    from agent_sre.tracing.conventions import AgentSpanKind
    from agent_sre.tracing.view import AgentSpan

    counter = CertificationCounter([], 60.0, 86400.0, CAP, heard)
    for index, agent in enumerate(ids()):
        span = AgentSpan(AgentSpanKind.TOOL_CALL, True, "s", b"\1" * 16, b"\2" * 8, 0, 1,
                         False, {"agent.id": agent, "agent.version": str(index)})  # fmt: skip
        counter.observe(span, float(index))
    return len(counter), IDS


def drive_certification_marks(heard: Heard, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    from agent_sre.certification.evidence import Mark
    from agent_sre.certification.marks import AgentMarks

    marks = AgentMarks(CAP, 86400.0, heard)
    for index, agent in enumerate(ids()):
        marks.add(agent, Mark(float(index), "per-agent"))
    return len(marks), IDS


DRIVERS: dict[str, Callable[[Heard, pytest.MonkeyPatch], tuple[int, int]]] = {
    "ledger_counters": drive_ledger,
    "pacing": drive_pacing,
    "rate_limit_buckets": drive_rate_limits,
    "budget_signals": drive_budget_signals,
    "refusal_digest": drive_refusal_digest,
    "anomaly": drive_anomaly,
    "proxy_agents": drive_proxy_agents,
    "redis_catch_up": drive_redis_catch_up,
    "circuits": drive_circuits,
    "throttles": drive_throttles,
    "rule_cooldowns": drive_rule_cooldowns,
    "incidents_open": drive_incidents_open,
    "incident_agents": drive_incident_agents,
    "incident_signals": drive_incident_signals,
    "shadow_in_flight": drive_shadow_in_flight,
    "fleet_agents": drive_fleet_agents,
    "certification_versions": drive_certification_versions,
    "certification_marks": drive_certification_marks,
}


def test_every_registered_map_has_a_driver() -> None:
    assert set(DRIVERS) == set(REGISTRY)


def test_every_map_named_in_the_code_is_registered() -> None:
    """A map name in a ``BoundedMap(...)`` or an eviction report must be registered."""
    named = re.compile(
        r"(?:BoundedMap\(\s*|on_evict\(\s*|_evicted\(\s*)\"([a-z_]+)\"", re.MULTILINE
    )
    found: set[str] = set()
    for folder in ("src", "daemon"):
        for path in (ROOT / folder).rglob("*.py"):
            found.update(named.findall(path.read_text()))
    assert found, "the scan found no map names: the pattern is stale"
    assert found <= set(REGISTRY), found - set(REGISTRY)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_a_flood_of_distinct_ids_stays_within_the_bound_and_is_counted(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    heard = Heard()
    left, distinct = DRIVERS[name](heard, monkeypatch)
    assert left <= CAP
    evicted = heard.keys.get(name, [])
    # everything put is either still there or was counted out (nothing vanishes unseen)
    assert len(evicted) == distinct - left
