"""Circuit breakers: the error ratio of recent calls to one target (a route, a tool, an
agent) opens the circuit; after ``open_for`` a few probe calls go through (half-open), and
their success closes it again, a failure reopens it.

Counts live in fixed time buckets (ten per window), so memory does not grow with traffic.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from agent_sre.signals import Severity, Signal, SignalState

if TYPE_CHECKING:
    from agent_sre.incidents.spec import CircuitBreakerSpec

BUCKETS = 10
FAILED_TRACES = 5
"""Trace ids of the latest failed calls a circuit remembers (for the incident, and replay)."""


class CircuitState(str, Enum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"

    @property
    def gauge(self) -> int:
        """``agent_sre_circuit_state``: 0 closed, 1 half-open, 2 open."""
        return _GAUGE[self]


_GAUGE = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}


@dataclass(frozen=True)
class Transition:
    """Signal: the circuit of ``target`` went from ``old`` to ``new``."""

    breaker: str
    target: str
    old: CircuitState
    new: CircuitState
    at: float
    reason: str
    traces: tuple[str, ...] = ()
    """Trace ids of the latest failed calls (hex), when it opened."""

    def to_signal(self) -> Signal:
        opened = self.new is CircuitState.OPEN
        closed = self.new is CircuitState.CLOSED
        scope, _, name = self.target.partition(":")
        return Signal(
            type="circuit_state",
            source="circuit_breaker",
            severity=Severity.CRITICAL if opened else Severity.WARNING,
            at=self.at,
            message=f"circuit {self.target}: {self.old.value} -> {self.new.value} ({self.reason})",
            labels={"breaker": self.breaker, "target": self.target, scope: name},
            state=SignalState.RESOLVED if closed else SignalState.FIRING,
            value=float(self.new.gauge),
            details={
                "old": self.old.value,
                "new": self.new.value,
                "reason": self.reason,
                "trace_ids": list(self.traces),
            },
        )


class Circuit:
    """The breaker of one target."""

    def __init__(self, spec: CircuitBreakerSpec, target: str) -> None:
        self.spec = spec
        self.target = target
        self.state = CircuitState.CLOSED
        self.opened_at = 0.0
        self.probing = 0
        self.probes_ok = 0
        self._width = spec.window / BUCKETS
        self._slots = [(-1, 0, 0)] * BUCKETS  # (bucket number, calls, errors)
        self.failed_traces: deque[str] = deque(maxlen=FAILED_TRACES)

    def retry_after(self, now: float) -> float:
        """Seconds until probes are let through (0 unless open)."""
        if self.state is not CircuitState.OPEN:
            return 0.0
        return max(0.0, self.opened_at + self.spec.open_for - now)

    def allow(self, now: float) -> tuple[bool, Transition | None]:
        """Whether a call may go through now, and the transition deciding it caused."""
        if self.state is CircuitState.CLOSED:
            return True, None
        transition = None
        if self.state is CircuitState.OPEN:
            if now - self.opened_at < self.spec.open_for:
                return False, None
            transition = self._move(CircuitState.HALF_OPEN, now, "cool-down over: probing")
            self.probing = self.probes_ok = 0
        if self.probing < self.spec.probes:
            self.probing += 1
            return True, transition
        return False, transition

    def release(self) -> None:
        """A call let through that the upstream never answered (a chaos fault, a replayed
        recording, a later refusal): not counted; a probe slot it held is given back."""
        if self.state is CircuitState.HALF_OPEN and self.probing > 0:
            self.probing -= 1

    def record(self, ok: bool, now: float, trace: str = "") -> Transition | None:
        """Counts a finished call that was allowed through (``trace``: its trace id)."""
        if not ok and trace:
            self.failed_traces.append(trace)
        if self.state is CircuitState.HALF_OPEN:
            if not ok:
                return self._open(now, "a probe failed")
            self.probes_ok += 1
            if self.probes_ok >= self.spec.probes:
                self._slots = [(-1, 0, 0)] * BUCKETS
                return self._move(CircuitState.CLOSED, now, "probes succeeded")
            return None
        if self.state is CircuitState.OPEN:
            return None  # a call let through before it opened
        number = int(now // self._width)
        index = number % BUCKETS
        bucket, calls, errors = self._slots[index]
        if bucket != number:
            calls = errors = 0
        self._slots[index] = (number, calls + 1, errors + (0 if ok else 1))
        if ok:
            return None  # a success never opens the circuit
        calls, errors = self.counts(now)
        if calls >= self.spec.min_calls and errors / calls >= self.spec.error_ratio:
            return self._open(now, f"{errors} of the last {calls} calls failed")
        return None

    def force_open(self, now: float, reason: str) -> Transition | None:
        if self.state is CircuitState.OPEN:
            self.opened_at = now
            return None
        return self._open(now, reason)

    def counts(self, now: float) -> tuple[int, int]:
        """Calls and errors within the window."""
        oldest = int(now // self._width) - BUCKETS + 1
        calls = errors = 0
        for bucket, c, e in self._slots:
            if bucket >= oldest:
                calls += c
                errors += e
        return calls, errors

    def _open(self, now: float, reason: str) -> Transition:
        self.opened_at = now
        return self._move(CircuitState.OPEN, now, reason, tuple(self.failed_traces))

    def _move(
        self, new: CircuitState, now: float, reason: str, traces: tuple[str, ...] = ()
    ) -> Transition:
        old, self.state = self.state, new
        return Transition(self.spec.name, self.target, old, new, now, reason, traces)


def target_of(spec: CircuitBreakerSpec, route: str, tool: str | None, agent: str) -> str | None:
    """The circuit a call belongs to under ``spec`` (None: the breaker does not cover it)."""
    if spec.routes and route not in spec.routes:
        return None
    if spec.per == "route":
        return f"route:{route}"
    if spec.per == "tool":
        return f"tool:{tool}" if tool else None
    return f"agent:{agent}" if agent else None
