"""OTLP/JSON: hex ids, camelCase, unknown fields ignored, errors that point at the field."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agent_sre_daemon.errors import InvalidArgumentError
from agent_sre_daemon.ingest.otlp_json import parse_otlp_json


def test_hex_ids_and_links() -> None:
    body = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "0102030405060708090a0b0c0d0e0f10",
                                "spanId": "1112131415161718",
                                "parentSpanId": "2122232425262728",
                                "links": [{"traceId": "ff" * 16, "spanId": "ee" * 8}],
                                "unknownField": 1,
                            }
                        ]
                    }
                ]
            }
        ]
    }
    request = parse_otlp_json(json.dumps(body).encode(), ExportTraceServiceRequest)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id == bytes(range(1, 17))
    assert span.parent_span_id.hex() == "2122232425262728"
    assert span.links[0].trace_id == b"\xff" * 16


def test_log_ids() -> None:
    body = {
        "resourceLogs": [
            {"scopeLogs": [{"logRecords": [{"traceId": "ab" * 16, "spanId": "cd" * 8}]}]}
        ]
    }
    request = parse_otlp_json(json.dumps(body).encode(), ExportLogsServiceRequest)
    assert request.resource_logs[0].scope_logs[0].log_records[0].span_id == b"\xcd" * 8


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1]", "must be a JSON object"),
        (b"\xff", "not valid JSON"),
        (b'{"resourceSpans": 3}', "not a valid ExportTraceServiceRequest"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "xyz"}]}]}]}',
            "resourceSpans[0].scopeSpans[0].spans[0].spanId: 'xyz' is not a hex-encoded id",
        ),
    ],
)
def test_errors(body: bytes, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        parse_otlp_json(body, ExportTraceServiceRequest)
    assert message in info.value.message


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash(body: bytes) -> None:
    with contextlib.suppress(InvalidArgumentError):
        parse_otlp_json(body, ExportTraceServiceRequest)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    ["resourceSpans", "scopeSpans", "spans", "traceId", "spanId", "name", "x"]
                ),
                children,
                max_size=3,
            )
        ),
        max_leaves=12,
    )
)
def test_arbitrary_json_shapes_never_crash(data: object) -> None:
    with contextlib.suppress(InvalidArgumentError):
        parse_otlp_json(json.dumps(data).encode(), ExportTraceServiceRequest)
