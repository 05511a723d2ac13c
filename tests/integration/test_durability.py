"""Nothing acknowledged is lost: upstream outages, kill -9, a full queue, SIGTERM."""

from __future__ import annotations

import signal
import threading
import time

import grpc

from tests.integration.conftest import forwarding
from tests.support.durability import Sender
from tests.support.metrics import scrape
from tests.support.spans import make_request
from tests.support.upstream import RecordingUpstream


def test_upstream_down_then_back_loses_nothing(make_daemon) -> None:
    upstream = RecordingUpstream().start()
    port = upstream.port
    upstream.stop()  # down before the daemon starts
    daemon = make_daemon(forwarding(upstream)).start()
    sender = Sender(daemon.addresses["otlp_grpc"])
    for _ in range(10):
        assert sender.send()
    time.sleep(1.0)  # a few failed attempts
    metrics = scrape(daemon.url("metrics", "/metrics"))
    assert metrics[("agent_sre_queue_size_bytes", ())] > 0
    assert metrics[("agent_sre_exporter_failed_requests_total", (("reason", "unavailable"),))] >= 1

    upstream = RecordingUpstream(port).start()
    try:
        assert upstream.wait_for(lambda: upstream.span_ids() >= sender.acked), daemon.log()
        assert len(sender.acked) == 500
    finally:
        upstream.stop()
        sender.close()


def test_upstream_transient_errors_are_retried(make_daemon, upstream: RecordingUpstream) -> None:
    upstream.fail_with = grpc.StatusCode.UNAVAILABLE
    daemon = make_daemon(forwarding(upstream)).start()
    sender = Sender(daemon.addresses["otlp_grpc"])
    assert sender.send()
    assert upstream.wait_for(lambda: upstream.calls >= 3)
    upstream.fail_with = None
    assert upstream.wait_for(lambda: upstream.span_ids() >= sender.acked)
    sender.close()


def test_permanent_upstream_refusal_is_dropped_and_counted(
    make_daemon, upstream: RecordingUpstream
) -> None:
    upstream.fail_with = grpc.StatusCode.INVALID_ARGUMENT
    daemon = make_daemon(forwarding(upstream)).start()
    sender = Sender(daemon.addresses["otlp_grpc"])
    assert sender.send(7)
    key = (
        "agent_sre_dropped_items_total",
        (("reason", "upstream_invalid_argument"), ("signal", "traces")),
    )
    assert upstream.wait_for(lambda: scrape(daemon.url("metrics", "/metrics")).get(key) == 7)
    assert "dropped 7 traces items" in daemon.log()
    # The queue is not blocked by the refused request.
    upstream.fail_with = None
    assert sender.send(3)
    assert upstream.wait_for(lambda: len(upstream.spans()) == 3)
    sender.close()


def test_kill_9_under_load_loses_nothing_acknowledged(make_daemon) -> None:
    upstream = RecordingUpstream().start()
    upstream.fail_with = grpc.StatusCode.UNAVAILABLE  # keep requests queued at the kill
    daemon = make_daemon(forwarding(upstream))
    daemon.start()
    sender = Sender(daemon.addresses["otlp_grpc"])
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            sender.send()

    thread = threading.Thread(target=load)
    thread.start()
    time.sleep(1.5)
    upstream.fail_with = None  # upstream takes some while the load goes on
    time.sleep(0.5)
    daemon.kill()
    stop.set()
    thread.join()
    acked_before = set(sender.acked)
    assert len(acked_before) >= 500, "the load generator barely ran"
    sender.close()

    daemon.start()
    try:
        assert upstream.wait_for(lambda: upstream.span_ids() >= acked_before, timeout=30), (
            f"{len(acked_before - upstream.span_ids())} acknowledged spans missing"
        )
    finally:
        upstream.stop()


def test_full_queue_pushes_back_instead_of_dropping(make_daemon) -> None:
    upstream = RecordingUpstream().start()
    port = upstream.port
    upstream.stop()
    config = forwarding(upstream, queue={"max_size_mib": 0.05})  # about 50 KiB
    daemon = make_daemon(config).start()
    sender = Sender(daemon.addresses["otlp_grpc"])
    for _ in range(40):
        sender.send()
    assert grpc.StatusCode.UNAVAILABLE in sender.refused
    metrics = scrape(daemon.url("metrics", "/metrics"))
    refused = metrics[
        ("agent_sre_receiver_refused_spans_total", (("protocol", "grpc"), ("reason", "queue_full")))
    ]
    assert refused == 50 * len(sender.refused)

    from tests.integration.test_bad_input import post

    status, headers, _ = post(
        daemon.url("otlp_http", "/v1/traces"),
        make_request(50).SerializeToString(),
        {"Content-Type": "application/x-protobuf"},
    )
    assert status == 503
    assert int(headers["Retry-After"]) >= 1

    upstream = RecordingUpstream(port).start()
    try:
        assert upstream.wait_for(lambda: upstream.span_ids() >= sender.acked)
        assert sender.send(), "intake resumes once the queue drains"
    finally:
        upstream.stop()
        sender.close()


def test_sigterm_flushes_then_leaves_the_rest_on_disk(make_daemon) -> None:
    upstream = RecordingUpstream().start()
    daemon = make_daemon(forwarding(upstream, shutdown_timeout="1s")).start()
    sender = Sender(daemon.addresses["otlp_grpc"])
    assert sender.send()
    assert upstream.wait_for(lambda: upstream.span_ids() >= sender.acked)

    upstream.fail_with = grpc.StatusCode.UNAVAILABLE
    assert sender.send()
    sender.close()
    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < 10
    assert "stay queued" in daemon.log()

    upstream.fail_with = None
    daemon.start()
    try:
        assert upstream.wait_for(lambda: upstream.span_ids() >= sender.acked)
    finally:
        daemon.stop()
        upstream.stop()


def test_no_upstream_means_nothing_queued(make_daemon, tmp_path) -> None:
    daemon = make_daemon().start()
    sender = Sender(daemon.addresses["otlp_grpc"])
    for _ in range(5):
        assert sender.send()
    sender.close()
    metrics = scrape(daemon.url("metrics", "/metrics"))
    assert metrics[("agent_sre_receiver_accepted_spans_total", (("protocol", "grpc"),))] == 250
    assert metrics[("agent_sre_queue_size_bytes", ())] == 0
    assert not (daemon.workdir / "state" / "queue.db").exists()
    daemon.signal(signal.SIGTERM)


def test_upstream_retry_info_is_honoured(make_daemon, upstream: RecordingUpstream) -> None:
    upstream.retry_after = 2.0  # RESOURCE_EXHAUSTED with RetryInfo: retryable, not before 2s
    daemon = make_daemon(forwarding(upstream)).start()
    sender = Sender(daemon.addresses["otlp_grpc"])
    assert sender.send(5)
    assert upstream.wait_for(lambda: upstream.calls >= 1)
    first = time.monotonic()
    upstream.retry_after = None
    assert upstream.wait_for(lambda: len(upstream.spans()) == 5)
    assert time.monotonic() - first >= 1.5  # backoff alone (50 ms initial) would be far sooner
    sender.close()
