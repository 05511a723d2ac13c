"""A corpus of bad requests against both receivers: the right status, a useful message,
and the daemon still serving the next good request."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
import zlib
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.integration.conftest import forwarding
from tests.support.metrics import scrape
from tests.support.spans import make_request

if TYPE_CHECKING:
    from tests.support.daemon import DaemonProcess
    from tests.support.upstream import RecordingUpstream

MIB = 1024 * 1024


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def grpc_export(daemon: DaemonProcess, body: bytes) -> tuple[grpc.StatusCode, str, bytes]:
    with grpc.insecure_channel(daemon.addresses["otlp_grpc"]) as channel:
        call = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=None,
            response_deserializer=None,
        )
        try:
            reply = call(body, timeout=10)
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or "", b""
    return grpc.StatusCode.OK, "", reply


def good_request(n: int = 3) -> trace_service_pb2.ExportTraceServiceRequest:
    return make_request(n)


@pytest.fixture
def daemon(make_daemon, upstream: RecordingUpstream) -> DaemonProcess:
    return make_daemon(merge_limits(forwarding(upstream))).start()


def merge_limits(config: dict[str, Any]) -> dict[str, Any]:
    config["receivers"] = {
        "otlp": {
            "grpc": {"endpoint": "127.0.0.1:0", "max_recv_msg_size_mib": 1},
            "http": {"endpoint": "127.0.0.1:0", "max_request_body_size_mib": 1},
        }
    }
    return config


def assert_still_serving(daemon: DaemonProcess) -> None:
    code, _, _ = grpc_export(daemon, good_request().SerializeToString())
    assert code is grpc.StatusCode.OK
    status, _, _ = post(
        daemon.url("otlp_http", "/v1/traces"),
        good_request().SerializeToString(),
        {"Content-Type": "application/x-protobuf"},
    )
    assert status == 200
    assert daemon.alive()


def bad_id_request() -> trace_service_pb2.ExportTraceServiceRequest:
    request = good_request(4)
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[1].trace_id = b"\x01" * 15
    spans[3].span_id = b"\x02" * 9
    return request


def all_bad_request() -> trace_service_pb2.ExportTraceServiceRequest:
    request = good_request(2)
    for span in request.resource_spans[0].scope_spans[0].spans:
        span.span_id = b"\x01\x02"
    return request


# -- gRPC ---------------------------------------------------------------------------------


def test_grpc_undecodable_bytes(daemon: DaemonProcess) -> None:
    code, message, _ = grpc_export(daemon, b"\xff\xff\xff\x0f garbage")
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "cannot decode ExportTraceServiceRequest" in message
    assert_still_serving(daemon)


def test_both_receivers_count_the_invalid_requests_they_refuse(daemon: DaemonProcess) -> None:
    grpc_export(daemon, b"\xff\xff\xff\x0f garbage")
    grpc_export(daemon, all_bad_request().SerializeToString())
    post(
        daemon.url("otlp_http", "/v1/traces"),
        b"\xff\xff garbage",
        {"Content-Type": "application/x-protobuf"},
    )
    metrics = scrape(daemon.url("metrics", "/metrics"))
    refused = "agent_sre_receiver_refused_requests_total"
    labels = (("protocol", "grpc"), ("reason", "invalid"), ("signal", "traces"))
    assert metrics[(refused, labels)] == 2
    labels = (("protocol", "http"), ("reason", "invalid"), ("signal", "traces"))
    assert metrics[(refused, labels)] == 1


def test_grpc_message_over_limit(daemon: DaemonProcess) -> None:
    body = make_request(1, big_attribute=2 * MIB).SerializeToString()
    code, _, _ = grpc_export(daemon, body)
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_still_serving(daemon)


def test_grpc_wrong_length_ids_are_partial_success(
    daemon: DaemonProcess, upstream: RecordingUpstream
) -> None:
    code, _, reply = grpc_export(daemon, bad_id_request().SerializeToString())
    assert code is grpc.StatusCode.OK
    response = trace_service_pb2.ExportTraceServiceResponse.FromString(reply)
    assert response.partial_success.rejected_spans == 2
    assert "trace_id must be 16 bytes, got 15" in response.partial_success.error_message
    assert upstream.wait_for(lambda: len(upstream.spans()) == 2)
    assert_still_serving(daemon)


def test_grpc_all_spans_bad_is_invalid_argument(daemon: DaemonProcess) -> None:
    code, message, _ = grpc_export(daemon, all_bad_request().SerializeToString())
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "span_id must be 8 bytes, got 2" in message
    assert_still_serving(daemon)


def test_grpc_full_success_leaves_partial_success_unset(daemon: DaemonProcess) -> None:
    code, _, reply = grpc_export(daemon, good_request().SerializeToString())
    assert code is grpc.StatusCode.OK
    response = trace_service_pb2.ExportTraceServiceResponse.FromString(reply)
    assert not response.HasField("partial_success")


def test_grpc_official_stub_round_trip(daemon: DaemonProcess) -> None:
    with grpc.insecure_channel(daemon.addresses["otlp_grpc"]) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        response = stub.Export(good_request(), timeout=10, compression=grpc.Compression.Gzip)
    assert not response.HasField("partial_success")


# -- HTTP ---------------------------------------------------------------------------------

PROTO = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def status_message(body: bytes, is_json: bool = False) -> str:
    if is_json:
        return str(json.loads(body)["message"])
    return str(status_pb2.Status.FromString(body).message)


def test_http_undecodable_protobuf(daemon: DaemonProcess) -> None:
    status, _, body = post(daemon.url("otlp_http", "/v1/traces"), b"\xff\xff\xff\x0f", PROTO)
    assert status == 400
    assert "cannot decode ExportTraceServiceRequest" in status_message(body)
    assert_still_serving(daemon)


def test_http_bad_json(daemon: DaemonProcess) -> None:
    status, _, body = post(daemon.url("otlp_http", "/v1/traces"), b"{not json", JSON)
    assert status == 400
    assert "not valid JSON" in status_message(body, is_json=True)
    assert_still_serving(daemon)


def test_http_json_with_non_hex_id(daemon: DaemonProcess) -> None:
    payload = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {"spans": [{"traceId": "zz", "spanId": "0102030405060708", "name": "x"}]}
                ]
            }
        ]
    }
    status, _, body = post(
        daemon.url("otlp_http", "/v1/traces"), json.dumps(payload).encode(), JSON
    )
    assert status == 400
    assert "resourceSpans[0].scopeSpans[0].spans[0].traceId" in status_message(body, is_json=True)
    assert_still_serving(daemon)


def test_http_json_accepted_with_hex_ids(
    daemon: DaemonProcess, upstream: RecordingUpstream
) -> None:
    payload = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "json-agent"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "invoke_agent planner",
                                "kind": 1,
                                "startTimeUnixNano": "1544712660000000000",
                                "endTimeUnixNano": "1544712661000000000",
                                "attributes": [
                                    {
                                        "key": "gen_ai.operation.name",
                                        "value": {"stringValue": "invoke_agent"},
                                    }
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    status, headers, body = post(
        daemon.url("otlp_http", "/v1/traces"), json.dumps(payload).encode(), JSON
    )
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {}
    assert upstream.wait_for(lambda: len(upstream.spans()) == 1)
    _, span = upstream.spans()[0]
    assert span.trace_id.hex() == "5b8efff798038103d269b633813fc60c"
    assert span.span_id.hex() == "eee19b7ec3c1b174"


def test_http_wrong_content_type(daemon: DaemonProcess) -> None:
    status, _, body = post(
        daemon.url("otlp_http", "/v1/traces"), b"hello", {"Content-Type": "text/plain"}
    )
    assert status == 415
    assert "text/plain" in status_message(body)
    assert_still_serving(daemon)


def test_http_body_over_limit(daemon: DaemonProcess) -> None:
    body = make_request(1, big_attribute=2 * MIB).SerializeToString()
    status, _, _ = post(daemon.url("otlp_http", "/v1/traces"), body, PROTO)
    assert status == 413
    assert_still_serving(daemon)


def test_http_gzip_bomb_refused_without_inflating(daemon: DaemonProcess) -> None:
    # 512 MiB of zeros compresses to about 0.5 MiB: under the limit on the wire.
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(MIB)
    bomb = b"".join(compressor.compress(chunk) for _ in range(512)) + compressor.flush()
    assert len(bomb) < MIB
    status, _, body = post(
        daemon.url("otlp_http", "/v1/traces"), bomb, {**PROTO, "Content-Encoding": "gzip"}
    )
    assert status == 413
    assert "inflated body exceeds" in status_message(body)
    assert_still_serving(daemon)


def test_http_gzip_accepted(daemon: DaemonProcess, upstream: RecordingUpstream) -> None:
    body = gzip.compress(good_request(5).SerializeToString())
    status, _, _ = post(
        daemon.url("otlp_http", "/v1/traces"), body, {**PROTO, "Content-Encoding": "gzip"}
    )
    assert status == 200
    assert upstream.wait_for(lambda: len(upstream.spans()) == 5)


def test_http_corrupt_gzip(daemon: DaemonProcess) -> None:
    status, _, body = post(
        daemon.url("otlp_http", "/v1/traces"),
        b"\x1f\x8b\x08\x00garbage",
        {**PROTO, "Content-Encoding": "gzip"},
    )
    assert status == 400
    assert "compressed" in status_message(body)
    assert_still_serving(daemon)


def test_http_partial_success(daemon: DaemonProcess) -> None:
    status, _, body = post(
        daemon.url("otlp_http", "/v1/traces"), bad_id_request().SerializeToString(), PROTO
    )
    assert status == 200
    response = trace_service_pb2.ExportTraceServiceResponse.FromString(body)
    assert response.partial_success.rejected_spans == 2


def test_http_unknown_path_and_method(daemon: DaemonProcess) -> None:
    status, _, _ = post(daemon.url("otlp_http", "/v1/nope"), b"", PROTO)
    assert status == 404
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(daemon.url("otlp_http", "/v1/traces"), timeout=5)
    assert info.value.code == 405
    assert_still_serving(daemon)


def test_grpc_gzip_bomb_refused(daemon: DaemonProcess) -> None:
    # 2 MiB that compresses to a few KiB: the limit applies to the inflated message.
    body = make_request(1, big_attribute=2 * MIB).SerializeToString()
    with grpc.insecure_channel(daemon.addresses["otlp_grpc"]) as channel:
        call = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=None,
            response_deserializer=None,
        )
        with pytest.raises(grpc.RpcError) as info:
            call(body, timeout=10, compression=grpc.Compression.Gzip)
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_still_serving(daemon)


def test_http_metrics_and_logs_count_against_the_queue_cap(make_daemon) -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    # an upstream that never answers: the queue only fills
    config = {"exporters": {"otlp": {"endpoint": "127.0.0.1:9", "queue": {"max_size_mib": 0.01}}}}
    daemon = make_daemon(config).start()
    logs = ExportLogsServiceRequest()
    record = logs.resource_logs.add().scope_logs.add().log_records.add()
    record.body.string_value = "x" * 6000
    body = logs.SerializeToString()
    url = daemon.url("otlp_http", "/v1/logs")
    headers = {"Content-Type": "application/x-protobuf"}
    assert post(url, body, headers)[0] == 200  # an empty queue always takes one
    status, reply_headers, _ = post(url, body, headers)
    assert status == 503  # 12 kB would not fit under the 10 kB cap
    assert "Retry-After" in reply_headers


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_usage_value_costs_no_other_span(
    daemon: DaemonProcess, upstream: RecordingUpstream, bad: float
) -> None:
    from tests.support.spans import set_value

    request = good_request(4)
    spans = request.resource_spans[0].scope_spans[0].spans
    for span in spans[:2]:
        for key, value in (
            ("gen_ai.operation.name", "chat"),
            ("gen_ai.request.model", "gpt-4o-mini"),
            ("gen_ai.usage.input_tokens", bad),
            ("gen_ai.usage.output_tokens", 12),
        ):
            kv = span.attributes.add()
            kv.key = key
            set_value(kv, value)
    code, _, reply = grpc_export(daemon, request.SerializeToString())
    assert code is grpc.StatusCode.OK
    answer = trace_service_pb2.ExportTraceServiceResponse.FromString(reply)
    assert answer.partial_success.rejected_spans == 0
    assert upstream.wait_for(lambda: len(upstream.spans()) == 4)
    key = ("agent_sre_spans_ignored_values_total", ())
    assert scrape(daemon.url("metrics", "/metrics"))[key] == 2
    assert_still_serving(daemon)
