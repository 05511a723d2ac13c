"""OTLP/HTTP bodies over 1 MiB are decoded on a worker thread: they are accepted and
refused exactly as small ones are, and the receiver goes on serving."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING

import pytest
from google.protobuf import json_format

from tests.integration.conftest import forwarding
from tests.integration.test_bad_input import (
    JSON,
    PROTO,
    assert_still_serving,
    post,
    status_message,
)
from tests.support.spans import make_request

if TYPE_CHECKING:
    from tests.support.daemon import DaemonProcess
    from tests.support.upstream import RecordingUpstream

SPANS = 3000
"""About 3 MiB as OTLP/JSON, 1.5 MiB as protobuf: over the inline-parse threshold."""


def big_json() -> bytes:
    request = make_request(SPANS)
    as_json = json_format.MessageToDict(request)
    for resource in as_json["resourceSpans"]:  # OTLP/JSON ids are hex, not base64
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                span["traceId"] = _hex(span["traceId"])
                span["spanId"] = _hex(span["spanId"])
    return json.dumps(as_json).encode()


def _hex(b64: str) -> str:
    return base64.b64decode(b64).hex()


@pytest.fixture
def daemon(make_daemon, upstream: RecordingUpstream) -> DaemonProcess:
    return make_daemon(forwarding(upstream)).start()


def test_a_big_json_export_is_accepted_whole(
    daemon: DaemonProcess, upstream: RecordingUpstream
) -> None:
    body = big_json()
    assert len(body) > 2 * 1024 * 1024
    status, _, reply = post(daemon.url("otlp_http", "/v1/traces"), body, JSON)
    assert status == 200, reply
    assert upstream.wait_for(lambda: len(upstream.span_ids()) == SPANS, timeout=30)


def test_a_big_protobuf_export_is_accepted_whole(
    daemon: DaemonProcess, upstream: RecordingUpstream
) -> None:
    body = make_request(SPANS).SerializeToString()
    assert len(body) > 1024 * 1024
    status, _, _ = post(daemon.url("otlp_http", "/v1/traces"), body, PROTO)
    assert status == 200
    assert upstream.wait_for(lambda: len(upstream.span_ids()) == SPANS, timeout=30)


def test_big_bad_bodies_are_refused_with_where_and_what(daemon: DaemonProcess) -> None:
    broken = big_json()[:-10]  # cut: not JSON any more
    status, _, reply = post(daemon.url("otlp_http", "/v1/traces"), broken, JSON)
    assert status == 400
    assert "not valid JSON" in status_message(reply, is_json=True)
    garbage = b"\xff" * (2 * 1024 * 1024)
    status, _, reply = post(daemon.url("otlp_http", "/v1/traces"), garbage, PROTO)
    assert status == 400
    assert "cannot decode ExportTraceServiceRequest" in status_message(reply)
    assert_still_serving(daemon)
