"""One run of an experiment: what it saw, what it injected, how traffic recovered, its score.

A :class:`Run` is counted by the runtime (``observe``) and moved through its states
(``running`` -> ``observing`` -> ``completed``/``aborted``/``stopped``, or ``interrupted`` by
a restart); ``to_dict``/``from_dict`` are its stored and API form.

Resilience score (0-100), with ``b`` the success ratio of targeted traffic before the run
(1 when there was none)::

    score = 100 * (0.4 * D + 0.3 * A + 0.3 * R) * (0.5 if aborted else 1)

- ``D`` (collateral): success ratio during the run of the targeted calls that were *not*
  faulted, over ``b`` (capped at 1) — faults spreading to healthy calls pull it down;
- ``A`` (after): success ratio of targeted traffic after the faults stopped, over ``b``;
- ``R`` (recovery): ``1 - time_to_recover / observe_after``; 0 when traffic had not
  recovered by the end of ``observe_after``. Recovered means a 5-second bucket of targeted
  calls at least as successful as ``b``.
A part with no calls to judge counts 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RECOVERY_BUCKET = 5.0
"""Seconds of traffic judged together when looking for recovery."""

ENDED_STATES = frozenset({"completed", "aborted", "stopped", "interrupted"})


@dataclass
class Counts:
    """Calls of one phase, how many failed, what they cost."""

    calls: int = 0
    errors: int = 0
    spend_usd: float = 0.0

    @property
    def sli(self) -> float | None:
        return (self.calls - self.errors) / self.calls if self.calls else None

    def add(self, ok: bool, cost: float | None) -> None:
        self.calls += 1
        if not ok:
            self.errors += 1
        if cost:
            self.spend_usd += cost

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "errors": self.errors,
            "sli": self.sli,
            "spend_usd": round(self.spend_usd, 9),
        }


def _counts(data: Any) -> Counts:
    if not isinstance(data, dict):
        return Counts()
    return Counts(int(data.get("calls", 0)), int(data.get("errors", 0)),
                  float(data.get("spend_usd", 0.0)))  # fmt: skip


@dataclass
class Run:
    """One run of one experiment."""

    id: str
    experiment: str
    started_at: float
    duration: float
    observe_after: float
    state: str = "running"
    faults_stopped_at: float | None = None
    ended_at: float | None = None
    reason: str = ""
    """Why it ended early: an abort rule's kind, ``operator``, ``blackout``, ``restart``."""
    message: str = ""
    before: Counts = field(default_factory=Counts)
    during: Counts = field(default_factory=Counts)
    during_unfaulted: Counts = field(default_factory=Counts)
    after: Counts = field(default_factory=Counts)
    calls_seen: int = 0
    """Every proxied call while faults ran (targeted or not)."""
    calls_chosen: int = 0
    """Targeted calls that fell in the share."""
    faults: dict[str, int] = field(default_factory=dict)
    recovered_at: float | None = None
    targets: dict[str, Any] = field(default_factory=dict)
    """The experiment's targets when it ran (what certification attributes runs by)."""
    final_state: str = "completed"
    """The state the run ends in once its observation is over."""
    _bucket_start: float = 0.0
    _bucket: Counts = field(default_factory=Counts)

    @property
    def injecting(self) -> bool:
        return self.state == "running"

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES

    # -- counting -------------------------------------------------------------------------

    def observe(self, now: float, ok: bool, faulted: bool, cost: float | None) -> None:
        """One targeted call finished (``faulted``: we injected into it)."""
        if self.state == "running":
            self.during.add(ok, cost)
            if not faulted:
                self.during_unfaulted.add(ok, cost)
        elif self.state == "observing":
            self.after.add(ok, cost)
            self._recovery(now, ok)

    def injected(self, fault: str) -> None:
        self.faults[fault] = self.faults.get(fault, 0) + 1

    def _recovery(self, now: float, ok: bool) -> None:
        if self.recovered_at is not None or self.faults_stopped_at is None:
            return
        if now - self._bucket_start >= RECOVERY_BUCKET:
            self._bucket_start = now
            self._bucket = Counts()
        self._bucket.add(ok, None)
        sli = self._bucket.sli
        if sli is not None and sli >= self.baseline:
            self.recovered_at = now

    @property
    def baseline(self) -> float:
        sli = self.before.sli
        return 1.0 if sli is None else sli

    # -- states ---------------------------------------------------------------------------

    def stop_faults(self, now: float, state: str = "completed", reason: str = "",
                    message: str = "") -> None:  # fmt: skip
        """The faults stop; the run watches recovery (``state`` is where it ends)."""
        self.faults_stopped_at = now
        self._bucket_start = now
        self.reason, self.message = reason, message
        self.final_state = state
        self.state = "observing" if self.observe_after > 0 else state
        if self.state != "observing":
            self.ended_at = now

    def finish(self, now: float) -> None:
        """The observation after the faults is over."""
        self.state = self.final_state
        self.ended_at = now

    def interrupt(self, now: float) -> None:
        """The daemon stopped (or restarted) mid-run: never resumed silently."""
        if self.faults_stopped_at is None:
            self.faults_stopped_at = now
        self.state = "interrupted"
        self.reason = self.reason or "restart"
        self.message = self.message or "the daemon stopped while the experiment ran"
        self.ended_at = now

    # -- outcome --------------------------------------------------------------------------

    @property
    def time_to_recover(self) -> float | None:
        if self.recovered_at is None or self.faults_stopped_at is None:
            return None
        return max(0.0, self.recovered_at - self.faults_stopped_at)

    @property
    def score(self) -> float | None:
        """The resilience score (module docstring); None until the faults stopped."""
        if self.faults_stopped_at is None:
            return None
        base = self.baseline or 1.0

        def ratio(counts: Counts) -> float:
            sli = counts.sli
            return 1.0 if sli is None else min(1.0, sli / base)

        collateral = ratio(self.during_unfaulted)
        after = ratio(self.after)
        if not self.after.calls or self.observe_after <= 0:
            recovery = 1.0
        elif self.time_to_recover is None:
            recovery = 0.0 if self.ended else 1.0
        else:
            recovery = max(0.0, 1.0 - self.time_to_recover / self.observe_after)
        score = 100.0 * (0.4 * collateral + 0.3 * after + 0.3 * recovery)
        if self._ended_as() == "aborted":
            score *= 0.5
        return round(score, 1)

    def _ended_as(self) -> str:
        return self.state if self.ended else self.final_state

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "experiment": self.experiment,
            "state": self.state,
            "started_at": self.started_at,
            "duration": self.duration,
            "observe_after": self.observe_after,
            "faults_stopped_at": self.faults_stopped_at,
            "ended_at": self.ended_at,
            "reason": self.reason,
            "message": self.message,
            "calls_seen": self.calls_seen,
            "calls_targeted": self.during.calls,
            "calls_chosen": self.calls_chosen,
            "faults_injected": dict(self.faults),
            "sli": {
                "before": self.before.to_dict(),
                "during": self.during.to_dict(),
                "during_unfaulted": self.during_unfaulted.to_dict(),
                "after": self.after.to_dict(),
            },
            "time_to_recover_s": self.time_to_recover,
            "resilience_score": self.score,
            "final_state": self._ended_as(),
            "targets": dict(self.targets),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        sli = data.get("sli") or {}
        run = cls(
            id=str(data["id"]),
            experiment=str(data["experiment"]),
            started_at=float(data["started_at"]),
            duration=float(data.get("duration", 0.0)),
            observe_after=float(data.get("observe_after", 0.0)),
            state=str(data.get("state", "running")),
            faults_stopped_at=data.get("faults_stopped_at"),
            ended_at=data.get("ended_at"),
            reason=str(data.get("reason", "")),
            message=str(data.get("message", "")),
            before=_counts(sli.get("before")),
            during=_counts(sli.get("during")),
            during_unfaulted=_counts(sli.get("during_unfaulted")),
            after=_counts(sli.get("after")),
            calls_seen=int(data.get("calls_seen", 0)),
            calls_chosen=int(data.get("calls_chosen", 0)),
            faults={str(k): int(v) for k, v in (data.get("faults_injected") or {}).items()},
            targets=dict(data.get("targets") or {}),
        )
        ttr = data.get("time_to_recover_s")
        if ttr is not None and run.faults_stopped_at is not None:
            run.recovered_at = run.faults_stopped_at + float(ttr)
        run.final_state = str(data.get("final_state", run.state))
        return run
