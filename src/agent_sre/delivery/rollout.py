"""One rollout run from plain values: its state, the variant of a call, and the decisions
(advance, promote, roll back) taken from the analysis, the SLO's burn and the time.

Phases: ``progressing`` (a step runs), ``paused`` (by an operator, or a ``pause`` step
awaiting promotion), ``promoted`` (every call goes to the candidate), ``rolled_back`` (a
gate failed: weight 0), ``aborted`` (by an operator: weight 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent_sre.delivery.analysis import FAIL, PASS, Analysis, Observation, Samples, analyse
from agent_sre.delivery.assign import BASELINE, CANDIDATE, variant

if TYPE_CHECKING:
    from collections.abc import Mapping

    from agent_sre.delivery.spec import RolloutSpec

PROGRESSING, PAUSED, PROMOTED, ROLLED_BACK, ABORTED = (
    "progressing",
    "paused",
    "promoted",
    "rolled_back",
    "aborted",
)
PHASE_CODES = {PROGRESSING: 1, PAUSED: 2, PROMOTED: 3, ROLLED_BACK: 4, ABORTED: 5}
"""``agent_sre_rollout_phase`` values."""
RUNNING = frozenset({PROGRESSING, PAUSED})
EVENTS_KEPT = 100


@dataclass(frozen=True)
class Event:
    """Something the rollout did, for its history, the bus and an incident's timeline."""

    at: float
    kind: str
    """``started``, ``step``, ``paused``, ``resumed``, ``promoted``, ``rolled_back``,
    ``aborted``, ``held`` (the next step waits for a certification tier)."""
    message: str
    step: int
    weight: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RolloutState:
    """What survives a restart."""

    phase: str = PROGRESSING
    step: int = 0
    step_started_at: float = 0.0
    weight: float = 0.0
    reason: str = ""
    paused_by: str = ""
    """``operator`` or ``step`` while paused."""
    events: list[Event] = field(default_factory=list)
    analysis: dict[str, Any] = field(default_factory=dict)
    held: dict[str, Any] = field(default_factory=dict)
    """While the next step waits for a certification tier: ``step`` (1-based), ``tier``,
    ``agent``, ``version`` and ``missing`` (the criteria not met); else empty."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "held": self.held,
            "phase": self.phase,
            "step": self.step,
            "step_started_at": self.step_started_at,
            "weight": self.weight,
            "reason": self.reason,
            "paused_by": self.paused_by,
            "events": [e.to_dict() for e in self.events],
            "analysis": self.analysis,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RolloutState:
        """Raises: KeyError, TypeError or ValueError on a malformed record."""
        phase = str(data["phase"])
        if phase not in PHASE_CODES:
            raise ValueError(f"unknown phase {phase!r}")
        return cls(
            phase=phase,
            step=int(data["step"]),
            step_started_at=float(data["step_started_at"]),
            weight=float(data["weight"]),
            reason=str(data.get("reason", "")),
            paused_by=str(data.get("paused_by", "")),
            events=[Event(**e) for e in data.get("events", [])],
            analysis=dict(data.get("analysis") or {}),
            held=dict(data.get("held") or {}),
        )


class Rollout:
    """A rollout's behaviour: pure, fed observations and the time by its caller."""

    def __init__(
        self,
        spec: RolloutSpec,
        now: float,
        state: RolloutState | None = None,
        max_samples: int = 10_000,
    ) -> None:
        self.spec = spec
        self.max_samples = max_samples
        if state is None or state.step >= len(spec.steps):
            state = RolloutState()
            self._enter(state, 0, now)
            self._record(state, now, "started", f"rollout {spec.name} started")
        self.state = state
        self.samples = {BASELINE: Samples(max_samples), CANDIDATE: Samples(max_samples)}
        self.gate: Gate | None = None
        """Asked before a step that requires a certification tier (set by the daemon)."""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def running(self) -> bool:
        return self.state.phase in RUNNING

    def variant_of(self, key: str) -> str:
        """The variant a call with this task (or trace) id takes."""
        return variant(self.spec.name, key, self.state.weight)

    def observe(self, which: str, seen: Observation) -> None:
        if self.running:
            self.samples[which].add(seen)

    def analysis(self) -> Analysis:
        return analyse(self.spec.analysis, self.samples[BASELINE], self.samples[CANDIDATE])

    # -- the current step's samples across a restart ------------------------------------

    def samples_copy(self) -> StepSamples:
        """The current step's samples, copied (to encode elsewhere while calls go on)."""
        return StepSamples(
            self.state.step,
            self.state.step_started_at,
            {which: samples.copy() for which, samples in self.samples.items()},
        )

    def restore_samples(self, record: Mapping[str, Any]) -> bool:
        """Takes back the samples a previous run kept of the step this rollout is at
        (a :meth:`StepSamples.to_dict` record). Returns False, taking nothing, when the
        record is of another step (or another start of it), or the rollout is not running.

        Raises:
            KeyError, TypeError or ValueError: a malformed record.
        """
        kept = StepSamples.from_dict(record, self.max_samples)
        state = self.state
        same_step = kept.step == state.step and kept.step_started_at == state.step_started_at
        if not self.running or not same_step:
            return False
        self.samples = {BASELINE: kept.samples[BASELINE], CANDIDATE: kept.samples[CANDIDATE]}
        return True

    # -- decisions ------------------------------------------------------------------------

    def evaluate(
        self, now: float, burn_rate: float | None = None, result: Analysis | None = None
    ) -> list[Event]:
        """Judges the step at ``now``: rolls back on a failed gate or the SLO burning past
        its limit, advances (or promotes) a finished step whose analysis passed.

        Args:
            result: the step's analysis when it was made elsewhere (from copies of the
                samples); None: made here.
        """
        if not self.running:
            return []
        state, spec = self.state, self.spec
        if result is None:
            result = self.analysis()
        state.analysis = {**result.to_dict(), "at": now, "step": state.step}
        limit = spec.analysis.max_burn_rate
        if burn_rate is not None and burn_rate > limit:
            state.analysis["slo_burn_rate"] = burn_rate
            return self.rollback(
                now, f"SLO {spec.analysis.slo} burns at {burn_rate:.3g}x (limit {limit:g}x)"
            )
        if result.verdict == FAIL:
            reasons = "; ".join(f"{c.metric}: {c.reason}" for c in result.failed)
            return self.rollback(now, f"analysis failed at step {state.step + 1}: {reasons}")
        step = spec.steps[state.step]
        if state.phase == PAUSED or step.duration is None:
            return []
        if now - state.step_started_at < step.duration:
            return []
        if result.verdict != PASS:
            state.reason = f"step {state.step + 1} is over; its analysis waits for samples"
            return []
        return self._next(now, f"step {state.step + 1} passed its analysis")

    def promote(self, now: float, by: str = "operator") -> list[Event]:
        """Moves to the next step (or to ``promoted`` from the last), whatever the analysis
        says so far."""
        if not self.running:
            raise RolloutConflictError(f"rollout {self.name} is {self.state.phase}")
        missing = self._missing(self.state.step + 1)
        if missing:
            tier = self.spec.steps[self.state.step + 1].require_tier
            raise CertificationRequiredError(
                f"rollout {self.name}: step {self.state.step + 2} requires certification "
                f"tier {tier} for {self.spec.agent} {self.spec.candidate}; missing: "
                + "; ".join(missing)
            )
        return self._next(now, f"promoted by {by}")

    def pause(self, now: float, by: str = "operator") -> list[Event]:
        if not self.running:
            raise RolloutConflictError(f"rollout {self.name} is {self.state.phase}")
        self.state.phase, self.state.paused_by = PAUSED, "operator"
        self.state.reason = f"paused by {by}"
        return [self._record(self.state, now, "paused", f"rollout {self.name} paused by {by}")]

    def resume(self, now: float, by: str = "operator") -> list[Event]:
        state = self.state
        if state.phase != PAUSED:
            raise RolloutConflictError(f"rollout {self.name} is {state.phase}, not paused")
        if state.paused_by == "step":
            raise RolloutConflictError(f"step {state.step + 1} awaits promotion: promote it")
        state.phase, state.paused_by, state.reason = PROGRESSING, "", ""
        return [self._record(state, now, "resumed", f"rollout {self.name} resumed by {by}")]

    def abort(self, now: float, by: str = "operator") -> list[Event]:
        if not self.running:
            raise RolloutConflictError(f"rollout {self.name} is {self.state.phase}")
        return self._stop(now, ABORTED, f"aborted by {by}")

    def rollback(self, now: float, reason: str) -> list[Event]:
        if not self.running:
            raise RolloutConflictError(f"rollout {self.name} is {self.state.phase}")
        return self._stop(now, ROLLED_BACK, reason)

    # -- transitions ----------------------------------------------------------------------

    def _missing(self, index: int) -> list[str]:
        """What the candidate lacks for step ``index`` (0-based): empty when the step
        requires no tier, or the candidate holds it."""
        if index >= len(self.spec.steps):
            return []
        tier = self.spec.steps[index].require_tier
        if tier is None:
            return []
        if self.gate is None:
            return [f"{tier}: no certification engine runs to ask"]
        return self.gate(tier, self.spec.agent, self.spec.candidate)

    def _next(self, now: float, why: str) -> list[Event]:
        state = self.state
        missing = self._missing(state.step + 1)
        if missing:
            tier = self.spec.steps[state.step + 1].require_tier
            held = {"step": state.step + 2, "tier": tier, "agent": self.spec.agent,
                    "version": self.spec.candidate, "missing": missing}  # fmt: skip
            if held == state.held:
                return []
            state.held = held
            state.reason = (
                f"step {state.step + 2} waits for certification tier {tier} of "
                f"{self.spec.agent} {self.spec.candidate}: " + "; ".join(missing)
            )
            return [self._record(state, now, "held", f"rollout {self.name} {state.reason}")]
        state.held = {}
        if state.step + 1 >= len(self.spec.steps):
            state.phase, state.weight, state.paused_by, state.reason = PROMOTED, 100.0, "", why
            return [self._record(state, now, "promoted", f"rollout {self.name} promoted: {why}")]
        self._enter(state, state.step + 1, now)
        self.samples = {BASELINE: Samples(self.max_samples), CANDIDATE: Samples(self.max_samples)}
        message = f"rollout {self.name} at step {state.step + 1} ({state.weight:g}%): {why}"
        return [self._record(state, now, "step", message)]

    def _stop(self, now: float, phase: str, why: str) -> list[Event]:
        state = self.state
        state.phase, state.weight, state.paused_by, state.reason = phase, 0.0, "", why
        state.held = {}
        kind = "rolled_back" if phase == ROLLED_BACK else "aborted"
        return [
            self._record(state, now, kind, f"rollout {self.name} {kind.replace('_', ' ')}: {why}")
        ]

    def _enter(self, state: RolloutState, index: int, now: float) -> None:
        step = self.spec.steps[index]
        state.step, state.step_started_at, state.weight = index, now, step.weight
        state.phase = PAUSED if step.pause else PROGRESSING
        state.paused_by = "step" if step.pause else ""
        state.reason = f"step {index + 1} awaits promotion" if step.pause else ""

    @staticmethod
    def _record(state: RolloutState, now: float, kind: str, message: str) -> Event:
        event = Event(now, kind, message, state.step, state.weight)
        state.events.append(event)
        del state.events[:-EVENTS_KEPT]
        return event

    def to_dict(self) -> dict[str, Any]:
        """The rollout for ``GET /v1/rollouts/{name}``."""
        spec = self.spec
        return {
            "name": spec.name,
            "route": spec.route,
            "vary": spec.vary,
            "mode": spec.mode,
            "baseline": spec.baseline,
            "candidate": spec.candidate,
            "steps": [s.model_dump() for s in spec.steps],
            **self.state.to_dict(),
            "samples": {v: s.calls for v, s in self.samples.items()},
        }


@dataclass(frozen=True)
class StepSamples:
    """One step's samples, and which step (and start of it) they belong to."""

    step: int
    step_started_at: float
    samples: dict[str, Samples]

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "step_started_at": self.step_started_at,
            "samples": {which: s.to_dict() for which, s in self.samples.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], max_samples: int = 10_000) -> StepSamples:
        """Raises: KeyError, TypeError or ValueError on a malformed record."""
        samples = data["samples"]
        return cls(
            int(data["step"]),
            float(data["step_started_at"]),
            {w: Samples.from_dict(samples[w], max_samples) for w in (BASELINE, CANDIDATE)},
        )


Gate = Callable[[str, str, str], list[str]]
"""``(tier, agent, version) -> missing``: what the version lacks for the tier (empty: it
holds it)."""


class RolloutConflictError(Exception):
    """The operation does not apply to the rollout in its phase."""


class CertificationRequiredError(RolloutConflictError):
    """The next step requires a certification tier the candidate does not hold (the
    message names what is missing)."""
