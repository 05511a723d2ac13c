"""The replay engine's signals (source ``replay``).

``replay_mismatch`` (warning): a replay session refused a call that matches no recorded
one; at most one a minute per session, carrying how many calls were refused since the
last one. ``replay_store_error`` (critical): the trace buffer's writer failed; it fires at
the first failure and resolves at the next good write (one pair per outage, not one per
failed write). ``replay_evicted_interesting`` (warning): the size cap forced out traces
kept because they mattered (errors, faults, refusals, bad SLO events, incidents).
"""

from __future__ import annotations

from agent_sre.digest import EventDigest
from agent_sre.signals import Severity, Signal, SignalState

SOURCE = "replay"
MISMATCH_INTERVAL = 60.0


class MismatchDigest:
    """Turns a session's refused calls into at most one signal per ``interval`` seconds.

    The first refusal signals at once (value 1); later ones within the interval are counted
    and reported, with the refusal that ends the quiet interval, as the signal's value (as
    the cost guard digests budget refusals). Sessions are few (``replay.max_sessions``) and
    a closed one is forgotten.
    """

    def __init__(self, interval: float = MISMATCH_INTERVAL) -> None:
        self._digest: EventDigest[str] = EventDigest(interval)

    def refused(self, session_id: str, trace_id: str, message: str, now: float) -> Signal | None:
        count = self._digest.due(session_id, now)
        if count is None:
            return None
        calls = "1 call" if count == 1 else f"{count} calls"
        return Signal(
            type="replay_mismatch",
            source=SOURCE,
            severity=Severity.WARNING,
            at=now,
            message=f"replay session {session_id} (trace {trace_id}) refused {calls} matching "
            f"no recorded call; the last: {message}",
            labels={"session_id": session_id, "trace_id": trace_id},
            value=float(count),
        )

    def forget(self, session_id: str) -> None:
        self._digest.forget(session_id)


class StoreHealth:
    """Whether the trace buffer's writer is failing: one ``replay_store_error`` firing at the
    first failed write, one resolved at the next good one."""

    def __init__(self) -> None:
        self.failing = False

    def failed(self, error: str, now: float) -> Signal | None:
        if self.failing:
            return None
        self.failing = True
        return Signal(
            type="replay_store_error",
            source=SOURCE,
            severity=Severity.CRITICAL,
            at=now,
            message=f"the trace buffer cannot write its store: {error}; traces and captured "
            "calls are being lost",
        )

    def wrote(self, now: float) -> Signal | None:
        if not self.failing:
            return None
        self.failing = False
        return Signal(
            type="replay_store_error",
            source=SOURCE,
            severity=Severity.INFO,
            at=now,
            message="the trace buffer writes its store again",
            state=SignalState.RESOLVED,
        )


def evicted_interesting(count: int, max_bytes: int, now: float) -> Signal:
    """The signal of ``count`` interesting traces forced out by the size cap."""
    traces = "1 trace" if count == 1 else f"{count} traces"
    return Signal(
        type="replay_evicted_interesting",
        source=SOURCE,
        severity=Severity.WARNING,
        at=now,
        message=f"the trace buffer's size cap ({max_bytes} bytes, replay.max_size_mib) forced "
        f"out {traces} kept because they mattered (errors, faults, refusals, incidents)",
        value=float(count),
    )
