"""The circuit-breaker proxy stage (``admission`` slot): fails calls fast while their
circuit is open, in the provider's error shape (``circuit_open``), and counts the outcome
of the calls it lets through that the upstream answered (``call.decided_by``): a chaos
fault, a replayed recording or a later refusal says nothing of the upstream's health."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_sre.bounded import BoundedMap
from agent_sre.gateway.outcome import DecidedBy
from agent_sre.incidents.breaker import Circuit, CircuitState, target_of
from agent_sre_daemon.errors import proxy_error

if TYPE_CHECKING:
    from aiohttp import web

    from agent_sre.bounded import OnEvict
    from agent_sre.incidents.breaker import Transition
    from agent_sre.incidents.spec import CircuitBreakerSpec
    from agent_sre_daemon.clock import Clock
    from agent_sre_daemon.incidents.metrics import IncidentMetrics
    from agent_sre_daemon.proxy.call import Call
    from agent_sre_daemon.proxy.stage import StageSlot
    from agent_sre_daemon.signals import SignalBus

CIRCUITS_ATTR = "agent_sre.circuit"
MAX_CIRCUITS = 10_000
"""Circuits kept (per agent or tool they are keyed by values clients send), least recently
used out first; a circuit idle for :data:`CIRCUIT_IDLE_SECONDS` is forgotten (closed)."""
CIRCUIT_IDLE_SECONDS = 3600.0


def failed(call: Call) -> bool:
    """A call that counts against its circuit: the upstream failed or could not be reached
    (5xx, 429, no answer); the caller's own mistakes (other 4xx) do not."""
    return call.status == 0 or call.status >= 500 or call.status == 429


class CircuitBreakerStage:
    name = "circuit_breaker"
    slot: StageSlot = "admission"

    def __init__(
        self,
        specs: list[CircuitBreakerSpec],
        clock: Clock,
        bus: SignalBus,
        metrics: IncidentMetrics,
        on_evict: OnEvict | None = None,
    ) -> None:
        self.specs = list(specs)
        self.clock = clock
        self.bus = bus
        self.metrics = metrics
        self.on_evict = on_evict
        self.circuits: BoundedMap[tuple[str, str], Circuit] = self._new_map()
        self._passed: dict[int, list[Circuit]] = {}

    def _new_map(self) -> BoundedMap[tuple[str, str], Circuit]:
        return BoundedMap(
            "circuits", MAX_CIRCUITS, idle_seconds=CIRCUIT_IDLE_SECONDS, on_evict=self.on_evict
        )

    def apply(self, specs: list[CircuitBreakerSpec]) -> None:
        """New breakers (reload): circuits of unchanged breakers keep their state."""
        self.specs = list(specs)
        kept = {(s.name, s.model_dump_json()) for s in specs}
        circuits = self._new_map()
        now = self.clock.time()
        for key, c in self.circuits.items():
            if (key[0], c.spec.model_dump_json()) in kept:
                circuits.put(key, c, now)
        self.circuits = circuits

    def circuit(self, spec: CircuitBreakerSpec, target: str) -> Circuit:
        key = (spec.name, target)
        now = self.clock.time()
        found = self.circuits.get(key, now)
        if found is None:
            found = Circuit(spec, target)
            self.circuits.put(key, found, now)
        return found

    # hot path: per proxied call
    async def on_request(self, call: Call) -> web.StreamResponse | None:
        if not self.specs:
            return None
        now = self.clock.time()
        passing: list[Circuit] = []
        for spec in self.specs:
            target = target_of(spec, call.route.name, call.plan.tool_name, call.identity.agent_id)
            if target is None:
                continue
            circuit = self.circuit(spec, target)
            allowed, transition = circuit.allow(now)
            if transition is not None:
                self.publish(transition)
            if not allowed:
                self.metrics.circuit_rejected.labels(target).inc()
                message = (
                    f"circuit {target} is open after repeated failures; "
                    f"retry in {circuit.retry_after(now):.0f}s"
                )
                call.fail("circuit_open", message)
                call.record.attributes[CIRCUITS_ATTR] = target
                return proxy_error(
                    call.route.config.api, "circuit_open", message,
                    retry_after=circuit.retry_after(now) or None,
                )  # fmt: skip
            passing.append(circuit)
        if passing:
            self._passed[id(call)] = passing
        return None

    async def on_response(self, call: Call) -> None:
        if not self._passed:
            return
        passing = self._passed.pop(id(call), None)
        if not passing:
            return
        if call.decided_by is not DecidedBy.UPSTREAM:
            for circuit in passing:
                circuit.release()
            return
        ok = not failed(call)
        now = self.clock.time()
        trace = call.trace.trace_id.hex() if not ok and call.trace is not None else ""
        for circuit in passing:
            transition = circuit.record(ok, now, trace)
            if transition is not None:
                self.publish(transition)

    def force_open(self, target: str, reason: str) -> list[str]:
        """Opens every circuit of ``target`` that a breaker covers (``open_circuit``)."""
        opened = []
        now = self.clock.time()
        for spec in self.specs:
            scope = target.partition(":")[0]
            if scope != spec.per:
                continue
            transition = self.circuit(spec, target).force_open(now, reason)
            if transition is not None:
                self.publish(transition)
            opened.append(spec.name)
        return opened

    def publish(self, transition: Transition) -> None:
        self.metrics.circuit_state.labels(transition.target).set(transition.new.gauge)
        self.bus.publish(transition.to_signal())

    def states(self) -> list[dict[str, object]]:
        now = self.clock.time()
        return [
            {
                "breaker": name,
                "target": target,
                "state": c.state.value,
                "calls": c.counts(now)[0],
                "errors": c.counts(now)[1],
                "retry_after": c.retry_after(now) if c.state is CircuitState.OPEN else None,
            }
            for (name, target), c in sorted(self.circuits.items())
        ]
