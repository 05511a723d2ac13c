"""The exporter's retry waits: exponential with jitter, capped, never sooner than the
upstream asked."""

from __future__ import annotations

import warnings
from concurrent.futures import Future

import grpc
from tenacity import AsyncRetrying, RetryCallState

from agent_sre_daemon.exporters.otlp import UpstreamError, _HintedWait


def state(attempt: int, error: Exception | None = None) -> RetryCallState:
    call = RetryCallState(AsyncRetrying(), None, (), {})
    call.attempt_number = attempt
    if error is not None:
        outcome: Future[object] = Future()
        outcome.set_exception(error)
        call.outcome = outcome  # type: ignore[assignment]
    return call


def test_waits_grow_by_the_multiplier_with_up_to_initial_of_jitter_and_stop_at_the_cap() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecated tenacity parameter
        wait = _HintedWait(initial=0.5, maximum=5.0, multiplier=2.0)
    for attempt, low in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0)):
        seen = [wait(state(attempt)) for _ in range(200)]
        assert all(low <= w <= min(low + 0.5, 5.0) for w in seen), (attempt, min(seen), max(seen))
        assert max(seen) - min(seen) > 0.1  # jittered
    assert all(wait(state(30)) == 5.0 for _ in range(50))


def test_a_retry_after_from_the_upstream_is_never_cut_short() -> None:
    wait = _HintedWait(initial=0.5, maximum=5.0, multiplier=2.0)
    hinted = UpstreamError(grpc.StatusCode.UNAVAILABLE, "busy", retry_after=30.0)
    assert wait(state(1, hinted)) == 30.0
    unhinted = UpstreamError(grpc.StatusCode.UNAVAILABLE, "busy", retry_after=None)
    assert wait(state(1, unhinted)) <= 1.0
