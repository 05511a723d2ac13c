"""Class 1 of issue 18, span fields: a span stamped 2^64-1 ns (a broken clock) made the trace
buffer fail a whole flush, losing other agents' acknowledged traces, and raised a critical
incident. Span times are clamped at the gate (the trace index), per span: every trace of
the flush is kept, the odd one too, and nothing fails."""

from __future__ import annotations

import os
import time
import urllib.request
from typing import TYPE_CHECKING, Any

from tests.adversarial.admin import TOKEN, send, strict_json
from tests.support.metrics import scrape
from tests.support.spans import make_request

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.support.daemon import DaemonProcess


def post_spans(daemon: DaemonProcess, body: bytes) -> int:
    request = urllib.request.Request(
        daemon.url("otlp_http", "/v1/traces"),
        data=body,
        method="POST",
        headers={"Content-Type": "application/x-protobuf"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def test_a_span_from_the_far_future_loses_nothing(make_daemon: Callable[..., Any]) -> None:
    daemon = make_daemon(
        {"admin": {"endpoint": "127.0.0.1:0", "token": TOKEN}, "replay": {"enabled": True}}
    ).start()
    traces = []
    for agent in ("alpha", "beta", "gamma"):
        trace_id = os.urandom(16)
        traces.append(trace_id.hex())
        assert post_spans(daemon, make_request(3, service=agent, trace_id=trace_id)
                          .SerializeToString()) == 200  # fmt: skip
    broken = make_request(2, service="broken-clock", trace_id=os.urandom(16))
    for span in broken.resource_spans[0].scope_spans[0].spans:
        span.start_time_unix_nano = 2**64 - 1
        span.end_time_unix_nano = 2**64 - 1
    traces.append(broken.resource_spans[0].scope_spans[0].spans[0].trace_id.hex())
    assert post_spans(daemon, broken.SerializeToString()) == 200

    status, answer = send(daemon, "GET", "/v1/traces?limit=100")
    assert status == 200, answer[:300]
    listed = {row["trace_id"]: row for row in strict_json(answer)["traces"]}
    assert set(traces) <= set(listed)
    for trace_id in traces:
        status, answer = send(daemon, "GET", f"/v1/traces/{trace_id}/spans")
        assert status == 200, answer[:300]
        strict_json(answer)
    time.sleep(0.6)  # a writer pass after the reads
    metrics = scrape(daemon.url("metrics", "/metrics"))
    assert metrics[("agent_sre_replay_write_errors_total", ())] == 0.0
    assert metrics[("agent_sre_replay_stored_spans_total", ())] >= 11
    status, answer = send(daemon, "GET", "/v1/incidents")
    assert strict_json(answer)["incidents"] == []
