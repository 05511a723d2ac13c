"""A call the upstream never answered gives its half-open probe back, uncounted."""

from __future__ import annotations

from agent_sre.incidents.breaker import Circuit, CircuitState
from agent_sre.incidents.spec import CircuitBreakerSpec


def test_a_released_probe_is_not_counted_and_frees_its_slot() -> None:
    spec = CircuitBreakerSpec.model_validate(
        {"name": "b", "min_calls": 2, "error_ratio": 0.5, "open_for": "10s", "probes": 1}
    )
    circuit = Circuit(spec, "route:r")
    for _ in range(2):
        assert circuit.allow(0.0)[0]
        circuit.record(False, 0.0)
    assert circuit.state is CircuitState.OPEN
    allowed, _ = circuit.allow(11.0)
    assert allowed and circuit.state is CircuitState.HALF_OPEN
    assert not circuit.allow(11.0)[0]  # the one probe is out
    circuit.release()  # it was answered by a fault or a replay: say nothing, give it back
    assert circuit.state is CircuitState.HALF_OPEN
    assert circuit.allow(11.5)[0]  # another probe may go
    circuit.record(True, 12.0)
    assert circuit.state is CircuitState.CLOSED


def test_release_of_a_closed_circuit_changes_nothing() -> None:
    spec = CircuitBreakerSpec.model_validate({"name": "b", "min_calls": 1})
    circuit = Circuit(spec, "route:r")
    circuit.release()
    assert circuit.counts(0.0) == (0, 0) and circuit.state is CircuitState.CLOSED
