"""Certification against hostile spans and clients, through the real daemon: trust scores
that are NaN, infinite or huge are ignored (counted as such, never averaged, never NaN in
JSON); thousands of versions stay within ``max_versions`` (evictions counted) and the tier
gauge within ``max_metric_series``; hostile ids and query values get clean errors."""

from __future__ import annotations

import math
import os
import time
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.adversarial.admin import TOKEN, send, strict_json
from tests.support.metrics import scrape
from tests.support.spans import set_value

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.support.daemon import DaemonProcess


def spans(rows: list[dict[str, object]]) -> bytes:
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    now = time.time_ns()
    for attrs in rows:
        span = scope.spans.add()
        span.trace_id, span.span_id = os.urandom(16), os.urandom(8)
        span.name = "tool"
        span.start_time_unix_nano, span.end_time_unix_nano = now - 1000, now
        for key, value in {"agent.span.kind": "TOOL_CALL", **attrs}.items():
            kv = span.attributes.add()
            kv.key = key
            set_value(kv, value)
    return request.SerializeToString()


def post_spans(daemon: DaemonProcess, body: bytes) -> None:
    request = urllib.request.Request(
        daemon.url("otlp_http", "/v1/traces"), data=body, method="POST",
        headers={"Content-Type": "application/x-protobuf"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def get(daemon: DaemonProcess, path: str) -> tuple[int, Any]:
    status, answer = send(daemon, "GET", path)
    return status, strict_json(answer)


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


def test_hostile_trust_scores_and_a_flood_of_versions(make_daemon: Callable[..., Any]) -> None:
    daemon = make_daemon(
        {
            "admin": {"token": TOKEN},
            "certification": {
                "max_versions": 50,
                "max_metric_series": 20,
                "evaluate_every": "1s",
                "tiers": [{"name": "trusted", "trust": {"min_average": 0.5, "required": True}}],
            },
        }
    ).start()
    hostile: list[object] = [math.nan, math.inf, -math.inf, 1e300, 2**62, -3, "NaN", "inf", "x"]
    rows: list[dict[str, object]] = [
        {"agent.id": "trusty", "agent.version": "1", "agent.trust_score": value}
        for value in hostile
    ]
    rows += [{"agent.id": "trusty", "agent.version": "1", "agent.trust_score": 0.9}] * 3
    post_spans(daemon, spans(rows))
    status, verdict = get(daemon, "/v1/certifications/trusty?version=1")
    assert status == 200
    (trust,) = verdict["criteria"]
    assert trust["evidence"]["samples"] == 3 and trust["evidence"]["average"] == 0.9
    # NaN, +-inf and 1e300 doubles never reach an engine (the span pass drops them); the
    # rest (2**62, -3, "NaN", "inf", "x") are ignored here, and said so
    assert trust["evidence"]["ignored"] == 5
    assert verdict["tier"] == "trusted"

    for start in range(0, 3000, 500):
        post_spans(daemon, spans([{"agent.id": "flood", "agent.version": f"v{n}"}
                                  for n in range(start, start + 500)]))  # fmt: skip
    status, listing = get(daemon, "/v1/certifications?limit=1000")
    assert status == 200 and listing["total"] <= 50
    assert len(listing["items"]) == listing["total"]
    metrics = wait_for(
        lambda: (
            (m := scrape(daemon.url("metrics", "/metrics")))
            and any(name == "agent_sre_certification_tier" for name, _ in m)
            and m
        )
    )
    series = [labels for name, labels in metrics if name == "agent_sre_certification_tier"]
    assert 0 < len(series) <= 20
    evicted = metrics[("agent_sre_state_evictions_total", (("map", "certification_versions"),))]
    assert evicted >= 3000 + 1 - 50
    assert metrics[("agent_sre_certification_versions", ())] <= 50


def test_hostile_ids_and_query_values_get_clean_errors(make_daemon: Callable[..., Any]) -> None:
    daemon: DaemonProcess = make_daemon({"admin": {"token": TOKEN}}).start()
    post_spans(daemon, spans([{"agent.id": "a/b c", "agent.version": "1"}]))
    quoted = urllib.parse.quote("a/b c", safe="")
    status, verdict = get(daemon, f"/v1/certifications/{quoted}")
    assert status == 200 and verdict["agent"] == "a/b c" and verdict["version"] == "1"
    status, body = get(daemon, "/v1/certifications/" + "%F0%9F%92%A5" * 600)
    assert status == 404 and body["error"]["type"] == "agent_not_found"
    assert len(body["error"]["message"]) < 600
    status, body = get(daemon, f"/v1/certifications/{quoted}?version=" + "9" * 5000)
    assert status == 404 and body["error"]["type"] == "version_not_found"
    assert len(body["error"]["message"]) < 600
    for query in ("limit=abc", "limit=0", "limit=1e9", "offset=-1", "limit=NaN"):
        status, body = get(daemon, f"/v1/certifications?{query}")
        assert status == 400 and body["error"]["type"] == "invalid_argument", query
