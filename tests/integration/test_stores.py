"""The stores of the real daemon: one daemon per state_dir, damaged files, a full disk."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import grpc
import pytest

from tests.integration.conftest import forwarding
from tests.support.disk import fill
from tests.support.metrics import scrape
from tests.support.spans import make_request

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.daemon import DaemonProcess
    from tests.support.upstream import RecordingUpstream

from tests.integration.test_bad_input import grpc_export, post

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def test_a_second_daemon_on_the_same_state_dir_refuses_naming_the_first(make_daemon) -> None:
    first = make_daemon().start()
    second = make_daemon({"state_dir": first.config["state_dir"]})
    with pytest.raises(RuntimeError, match="daemon exited with 1") as refused:
        second.start()
    message = str(refused.value)
    assert f"state_dir {first.config['state_dir']} is in use by process {first.proc.pid}" in (
        message
    )
    assert "Traceback" not in message
    assert first.alive()
    assert first.stop() == 0
    second.start()  # free again once the first one is gone
    assert second.alive()


def test_damaged_queue_and_ledger_are_moved_aside_and_the_daemon_starts(
    make_daemon, upstream: RecordingUpstream
) -> None:
    daemon = make_daemon(forwarding(upstream))
    state = daemon.workdir / "state"
    state.mkdir()
    (state / "queue.db").write_bytes(b"not sqlite at all " * 500)
    (state / "ledger.sqlite").write_bytes(b"\x13\x37" * 5000)
    daemon.start()
    kept = sorted(path.name.split(".corrupt-")[0] for path in state.glob("*.corrupt-*"))
    assert kept == ["ledger.sqlite", "queue.db"]
    log = daemon.log()
    assert "queue.db is not a usable SQLite database" in log
    assert "ledger.sqlite is not a usable SQLite database" in log
    assert "Traceback" not in log
    code, _, _ = grpc_export(daemon, make_request(2).SerializeToString())
    assert code is grpc.StatusCode.OK
    assert upstream.wait_for(lambda: len(upstream.span_ids()) == 2)


def refusals(daemon: DaemonProcess) -> dict[str, float]:
    samples = scrape(daemon.url("metrics", "/metrics"))
    return {
        dict(labels)["protocol"]: value
        for (name, labels), value in samples.items()
        if name == "agent_sre_receiver_refused_requests_total"
        and dict(labels).get("reason") == "storage"
    }


def test_full_disk_answers_retryable_and_everything_recovers_with_the_disk(
    make_daemon, upstream: RecordingUpstream, small_disk: Path
) -> None:
    daemon = make_daemon({**forwarding(upstream), "state_dir": str(small_disk / "state")})
    daemon.start()
    first = make_request(3)
    assert grpc_export(daemon, first.SerializeToString())[0] is grpc.StatusCode.OK
    assert upstream.wait_for(lambda: len(upstream.span_ids()) == 3)

    filler = fill(small_disk)
    big = make_request(2000).SerializeToString()  # more than the WAL already holds
    status, headers, _ = post(daemon.url("otlp_http", "/v1/traces"), big, PROTOBUF)
    assert status == 503
    assert int(headers["Retry-After"]) >= 1
    code, details, _ = grpc_export(daemon, big)
    assert code is grpc.StatusCode.UNAVAILABLE
    assert "cannot store" in details
    counted = refusals(daemon)
    assert counted.get("http", 0) >= 1 and counted.get("grpc", 0) >= 1
    assert daemon.alive()

    filler.unlink()  # the disk recovers
    time.sleep(1.1)  # the receivers' storage cool-down
    after = make_request(5)
    status, _, _ = post(daemon.url("otlp_http", "/v1/traces"), after.SerializeToString(), PROTOBUF)
    assert status == 200
    assert upstream.wait_for(lambda: len(upstream.span_ids()) == 8)  # forwarding lives on

    fill(small_disk)  # full again, and asked to stop meanwhile: a clean exit all the same
    status, _, _ = post(daemon.url("otlp_http", "/v1/traces"), big, PROTOBUF)
    assert status == 503
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.log()
