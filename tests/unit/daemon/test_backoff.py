"""The exporter's retry waits: exponential with jitter, capped, never sooner than the
upstream asked."""

from __future__ import annotations

import itertools
import time
import warnings
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import grpc
from tenacity import AsyncRetrying, RetryCallState

from agent_sre_daemon.exporters.otlp import UpstreamError, _HintedWait
from tests.support.spans import make_request
from tests.support.upstream import RecordingUpstream
from tests.unit.daemon.test_forwarder_signals import drain, forwarder

if TYPE_CHECKING:
    from pathlib import Path


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


class _TimedUpstream(RecordingUpstream):
    """Refuses its first ``failures`` calls (UNAVAILABLE, retryable) and notes when each came."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.times: list[float] = []

    def _record(self, context: grpc.ServicerContext, box: list[Any], request: Any) -> bool:
        self.times.append(time.monotonic())
        self.fail_with = grpc.StatusCode.UNAVAILABLE if len(self.times) <= self.failures else None
        return super()._record(context, box, request)


def test_the_first_retry_waits_as_the_backoff_says_though_the_first_attempt_is_made_bare(
    tmp_path: Path,
) -> None:
    """The first attempt goes out without the retry machinery; a failure then hands over to it
    as that attempt's outcome, so every wait is the one the backoff gives that attempt:
    0.2-0.4 s after the first, 0.4-0.6 s after the second, and the batch is delivered."""
    upstream = _TimedUpstream(failures=2).start()
    exporter = forwarder(
        tmp_path, upstream, [], initial_interval=0.2, max_interval=5.0, multiplier=2.0
    )

    drain(exporter, upstream, make_request(3).SerializeToString(), 3)
    assert len(upstream.times) == 3 and len(upstream.traces) == 1
    first, second = (b - a for a, b in itertools.pairwise(upstream.times))
    assert 0.2 <= first < 0.4 + 0.15, first
    assert 0.4 <= second < 0.6 + 0.15, second
