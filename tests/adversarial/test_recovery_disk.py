"""A full ``state_dir`` (a real 4 MiB tmpfs): reads of the trace buffer answer (or say 503
``storage_unavailable`` with a Retry-After), never 500; and once the upstream is back and
the queue has drained, new spans are taken again (the trace buffer does not keep the room
the queue needs)."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from tests.integration.conftest import forwarding
from tests.integration.test_bad_input import post
from tests.support.disk import fill, small_disk
from tests.support.spans import make_request

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.support.daemon import DaemonProcess
    from tests.support.upstream import RecordingUpstream

__all__ = ["small_disk"]  # the fixture
PROTOBUF = {"Content-Type": "application/x-protobuf"}
TOKEN = "tok"  # captured traces are read with the token


def get(daemon: DaemonProcess, path: str) -> tuple[int, dict[str, str], Any]:
    sent = urllib.request.Request(
        daemon.url("admin", path), headers={"Authorization": f"Bearer {TOKEN}"}
    )
    try:
        with urllib.request.urlopen(sent, timeout=30) as response:
            return response.status, dict(response.headers), json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")


def send(daemon: DaemonProcess, spans: int, trace: int) -> int:
    body = make_request(spans, trace_id=trace.to_bytes(16, "big")).SerializeToString()
    status, _, _ = post(daemon.url("otlp_http", "/v1/traces"), body, PROTOBUF)
    return int(status)


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_reads_of_the_trace_buffer_on_a_full_disk_answer_or_say_503(
    make_daemon: Callable[..., DaemonProcess], upstream: RecordingUpstream, small_disk: Path
) -> None:
    daemon = make_daemon({**forwarding(upstream), "state_dir": str(small_disk / "state"),
                          "admin": {"endpoint": "127.0.0.1:0", "token": TOKEN}})  # fmt: skip
    daemon.start()
    for trace in range(1, 6):
        assert send(daemon, 20, trace) == 200
    listed = wait_for(lambda: get(daemon, "/v1/traces")[2].get("traces"), "stored traces")
    assert listed
    fill(small_disk)
    answers = []
    for trace in range(6, 40):  # what arrives now waits in the buffer, which cannot write it
        send(daemon, 50, trace)
        for path in ("/v1/traces", f"/v1/traces/{1:032x}", f"/v1/traces/{1:032x}/spans"):
            status, headers, body = get(daemon, path)
            answers.append((path, status))
            assert status in (200, 503), (path, status, body)
            if status == 503:
                assert body["error"]["type"] == "storage_unavailable", body
                assert int(headers["Retry-After"]) >= 1
    assert daemon.alive()
    assert "Traceback" not in daemon.log(), "a full disk is one line, not a traceback"
    assert daemon.stop() == 0


@pytest.fixture
def shared_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs of which something else already took all but 7 MiB."""
    mount = tmp_path / "disk16"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                          capture_output=True, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        fill(mount, leave=7 * 1024 * 1024)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_spans_are_taken_again_once_the_upstream_is_back_and_the_queue_drained(
    make_daemon: Callable[..., DaemonProcess], upstream: RecordingUpstream, shared_disk: Path
) -> None:
    daemon = make_daemon({**forwarding(upstream), "state_dir": str(shared_disk / "state")})
    daemon.start()
    upstream.fail_with = grpc.StatusCode.UNAVAILABLE  # the upstream goes away
    refused = 0
    for trace in range(1, 400):
        if send(daemon, 100, trace) == 503:
            refused += 1
            if refused >= 3:
                break
    assert refused >= 3, "the disk filled up"

    upstream.fail_with = None  # it is back: the queue drains
    wait_for(lambda: get(daemon, "/v1/status")[2]["queue"]["requests"] == 0, "the drain")
    before = len(upstream.span_ids())
    taken = wait_for(lambda: send(daemon, 100, 10_000) == 200, "a request taken again")
    assert taken
    assert upstream.wait_for(lambda: len(upstream.span_ids()) >= before + 100)
    assert "released its ballast" in daemon.log()
    assert "Traceback" not in daemon.log()
    assert daemon.stop() == 0
    assert not (shared_disk / "state" / "ballast").exists(), "a clean stop gives it back"
