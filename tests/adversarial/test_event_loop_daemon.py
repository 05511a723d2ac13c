"""Class 7 of issue 18 against the real daemon: no input holds the event loop. While an
upstream streams 48 MiB of server-sent events without one blank line, and while traces of
3,000 spans are diffed, ``/healthz`` keeps answering (within a generous timeout: what is
asserted is that it answers while the big work is in progress, not how fast; the figures
are in ``bench/event_loop.py``). The stream reaches the client byte for byte, and the event
too long to read is counted."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.adversarial.admin import TOKEN, send, strict_json
from tests.adversarial.upstreams import EndlessEventUpstream
from tests.support.metrics import scrape

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.support.daemon import DaemonProcess

MIB = 1024 * 1024
GENEROUS = 10.0
"""Seconds /healthz may take; a kubelet's default probe timeout is 1 s."""


def healthz(daemon: DaemonProcess) -> int:
    url = daemon.url("metrics", "/healthz")
    with urllib.request.urlopen(url, timeout=GENEROUS) as response:
        return response.status


def probe_while(daemon: DaemonProcess, busy: Callable[[], bool], seconds: float = 60) -> int:
    """Asks /healthz every 0.1 s while ``busy()``; the answers that came while still busy."""
    answered = 0
    deadline = time.monotonic() + seconds
    while busy() and time.monotonic() < deadline:
        assert healthz(daemon) == 200
        if busy():
            answered += 1
        time.sleep(0.1)
    return answered


@pytest.fixture
def endless() -> Iterator[EndlessEventUpstream]:
    upstream = EndlessEventUpstream(48 * MIB).start()
    yield upstream
    upstream.stop()


def test_an_sse_answer_without_blank_lines_does_not_hold_the_loop(
    make_daemon: Callable[..., DaemonProcess], endless: EndlessEventUpstream
) -> None:
    daemon = make_daemon({
        "admin": {"endpoint": "127.0.0.1:0", "token": TOKEN},
        "proxy": {"endpoint": "127.0.0.1:0", "routes": [
            {"name": "openai", "prefix": "/openai", "upstream": endless.url, "api": "openai"}]},
        "replay": {"enabled": True},
    }).start()  # fmt: skip
    got: dict[str, Any] = {}

    def client() -> None:
        body = json.dumps({"model": "gpt-4o", "stream": True,
                           "messages": [{"role": "user", "content": "hi"}]}).encode()  # fmt: skip
        request = urllib.request.Request(
            daemon.url("proxy", "/openai/v1/chat/completions"), data=body, method="POST",
            headers={"Content-Type": "application/json", "X-Agent-Id": "reader"},
        )  # fmt: skip
        digest, size = hashlib.sha256(), 0
        with urllib.request.urlopen(request, timeout=120) as response:
            while chunk := response.read(1024 * 1024):
                digest.update(chunk)
                size += len(chunk)
        got.update(digest=digest.hexdigest(), size=size)

    reader = threading.Thread(target=client)
    reader.start()
    answered = probe_while(daemon, reader.is_alive)
    reader.join(120)
    assert answered >= 1, "the stream ended before /healthz could be asked"
    expected = EndlessEventUpstream.payload(48 * MIB)
    assert got == {"digest": hashlib.sha256(expected).hexdigest(), "size": len(expected)}
    metrics = scrape(daemon.url("metrics", "/metrics"))
    oversized = ("agent_sre_proxy_sse_oversized_events_total", (("route", "openai"),))
    assert metrics.get(oversized, 0.0) >= 1.0


def flat_trace(spans: int, seed: int) -> ExportTraceServiceRequest:
    """One trace: a root and ``spans - 1`` children of a few names (the shape a long agent
    loop makes), each run a little different."""
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    kv = resource.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", f"agent-{seed}"
    out = resource.scope_spans.add().spans
    trace_id = os.urandom(16)
    now = time.time_ns()
    for i in range(spans):
        span = out.add()
        span.trace_id = trace_id
        span.span_id = (i + 1).to_bytes(8, "big")
        if i:
            span.parent_span_id = (1).to_bytes(8, "big")
        span.name = f"tool-{(i * seed) % 7}"
        span.start_time_unix_nano = now + i * 1000
        span.end_time_unix_nano = now + i * 1000 + 500 * seed
        attr = span.attributes.add()
        attr.key, attr.value.string_value = "gen_ai.request.model", f"m-{i % (3 + seed)}"
    return request


def test_diffing_big_traces_does_not_hold_the_loop(
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    daemon = make_daemon(
        {"admin": {"endpoint": "127.0.0.1:0", "token": TOKEN}, "replay": {"enabled": True}}
    ).start()
    ids = []
    for seed in (1, 2):
        request = flat_trace(3000, seed)
        ids.append(request.resource_spans[0].scope_spans[0].spans[0].trace_id.hex())
        posted = urllib.request.Request(
            daemon.url("otlp_http", "/v1/traces"), data=request.SerializeToString(),
            method="POST", headers={"Content-Type": "application/x-protobuf"},
        )  # fmt: skip
        with urllib.request.urlopen(posted, timeout=30) as response:
            assert response.status == 200
    in_flight = [0]
    lock = threading.Lock()
    results: list[int] = []

    def differ(rounds: int) -> None:
        for _ in range(rounds):
            with lock:
                in_flight[0] += 1
            try:
                status, answer = send(daemon, "GET", f"/v1/traces/diff?a={ids[0]}&b={ids[1]}",
                                      timeout=120)  # fmt: skip
                assert status == 200, answer[:300]
                assert strict_json(answer)["changes"]
                results.append(status)
            finally:
                with lock:
                    in_flight[0] -= 1

    workers = [threading.Thread(target=differ, args=(3,)) for _ in range(3)]
    for worker in workers:
        worker.start()
    time.sleep(0.2)
    answered = probe_while(daemon, lambda: in_flight[0] > 0)
    for worker in workers:
        worker.join(180)
    assert results == [200] * 9
    assert answered >= 1, "the diffs ended before /healthz could be asked"
    status, answer = send(daemon, "GET", f"/v1/traces/{ids[0]}/spans")
    assert status == 200
    assert len(strict_json(answer)["spans"]) == 3000
