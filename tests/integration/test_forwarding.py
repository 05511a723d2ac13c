"""OTLP in through the OpenTelemetry SDK's own exporters, enriched OTLP out upstream."""

from __future__ import annotations

import json

from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from tests.integration.conftest import forwarding
from tests.support.durability import Sender
from tests.support.metrics import scrape
from tests.support.upstream import RecordingUpstream, attrs


def _emit_agent_spans(provider: TracerProvider, tag: str) -> dict[str, str]:
    """One span per convention; returns span name -> expected agent span kind."""
    tracer = provider.get_tracer("test")
    expected = {}
    with tracer.start_as_current_span(
        f"{tag} task", attributes={"agent.span.kind": "AGENT_TASK", "agent.id": "a1"}
    ):
        expected[f"{tag} task"] = "AGENT_TASK"
        with tracer.start_as_current_span(
            f"{tag} chat",
            attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"},
        ):
            expected[f"{tag} chat"] = "LLM_INFERENCE"
        with tracer.start_as_current_span(
            f"{tag} tool", attributes={"openinference.span.kind": "TOOL"}
        ) as s:
            s.set_status(Status(StatusCode.ERROR))
            expected[f"{tag} tool"] = "TOOL_CALL"
        with tracer.start_as_current_span(f"{tag} plain"):
            expected[f"{tag} plain"] = ""
    return expected


def test_sdk_spans_over_grpc_and_http_reach_upstream_enriched(
    make_daemon, upstream: RecordingUpstream
) -> None:
    daemon = make_daemon(forwarding(upstream)).start()
    expected: dict[str, str] = {}
    for tag, exporter in (
        (
            "grpc",
            GrpcSpanExporter(endpoint=f"http://{daemon.addresses['otlp_grpc']}", insecure=True),
        ),
        ("http", HttpSpanExporter(endpoint=daemon.url("otlp_http", "/v1/traces"))),
    ):
        provider = TracerProvider(resource=Resource.create({"service.name": f"agent-{tag}"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        expected |= _emit_agent_spans(provider, tag)
        provider.shutdown()

    assert upstream.wait_for(lambda: len(upstream.spans()) == len(expected)), daemon.log()
    for resource, span in upstream.spans():
        resource_attrs = attrs(resource.attributes)
        assert resource_attrs["agent_sre.node"] == "test-node"
        assert resource_attrs["service.name"] in ("agent-grpc", "agent-http")
        kind = attrs(span.attributes).get("agent.span.kind", "")
        assert kind == expected[span.name], span.name

    metrics = scrape(daemon.url("metrics", "/metrics"))
    assert metrics[("agent_sre_receiver_accepted_spans_total", (("protocol", "grpc"),))] == 4
    assert metrics[("agent_sre_receiver_accepted_spans_total", (("protocol", "http"),))] == 4
    assert metrics[("agent_sre_spans_total", (("kind", "TOOL_CALL"),))] == 2
    assert metrics[("agent_sre_spans_total", (("kind", "OTHER"),))] == 2
    assert upstream.wait_for(
        lambda: (
            scrape(daemon.url("metrics", "/metrics")).get(
                ("agent_sre_exporter_sent_spans_total", ())
            )
            == 8
        )
    )


def test_metrics_and_logs_pass_through_unchanged(make_daemon, upstream: RecordingUpstream) -> None:
    daemon = make_daemon(forwarding(upstream)).start()
    endpoint = f"http://{daemon.addresses['otlp_grpc']}"

    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint, insecure=True))
    meter_provider = MeterProvider(metric_readers=[reader])
    counter = meter_provider.get_meter("test").create_counter("agent.requests")
    counter.add(3, {"agent.id": "a1"})
    meter_provider.shutdown()

    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=endpoint, insecure=True))
    )
    logger = logger_provider.get_logger("test")
    from opentelemetry._logs import LogRecord

    logger.emit(LogRecord(body="agent said hello", attributes={"agent.id": "a1"}))
    logger_provider.shutdown()

    assert upstream.wait_for(lambda: upstream.metrics and upstream.logs), daemon.log()
    metric = upstream.metrics[0].resource_metrics[0].scope_metrics[0].metrics[0]
    assert metric.name == "agent.requests"
    assert metric.sum.data_points[0].as_int == 3
    record = upstream.logs[0].resource_logs[0].scope_logs[0].log_records[0]
    assert record.body.string_value == "agent said hello"
    # Passed through unchanged: no enrichment on metrics and logs.
    assert "agent_sre.node" not in attrs(upstream.logs[0].resource_logs[0].resource.attributes)
    metrics = scrape(daemon.url("metrics", "/metrics"))
    assert (
        metrics[
            ("agent_sre_receiver_accepted_items_total", (("protocol", "grpc"), ("signal", "logs")))
        ]
        == 1
    )


def test_headers_k8s_identity_and_upstream_partial_success(
    make_daemon, upstream: RecordingUpstream
) -> None:
    upstream.reject_spans = 2
    config = forwarding(upstream, headers={"X-Tenant": "team-a"})
    daemon = make_daemon(config, K8S_NODE_NAME="worker-3", K8S_POD_NAME="agent-7f9c").start()
    sender = Sender(daemon.addresses["otlp_grpc"])
    assert sender.send(10)
    sender.close()
    assert upstream.wait_for(lambda: len(upstream.spans()) == 10)
    resource = attrs(upstream.spans()[0][0].attributes)
    assert resource["k8s.node.name"] == "worker-3"
    assert resource["k8s.pod.name"] == "agent-7f9c"
    assert upstream.metadata[0]["x-tenant"] == "team-a"
    key = ("agent_sre_exporter_rejected_items_total", (("signal", "traces"),))
    assert upstream.wait_for(lambda: scrape(daemon.url("metrics", "/metrics")).get(key) == 2)
    assert "upstream rejected 2 of 10 traces items" in daemon.log()


def test_http_metrics_and_logs_json_and_protobuf(make_daemon, upstream: RecordingUpstream) -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from tests.integration.test_bad_input import post

    daemon = make_daemon(forwarding(upstream)).start()
    metrics_json = {
        "resourceMetrics": [
            {
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "agent.tasks",
                                "sum": {
                                    "dataPoints": [{"asInt": "5", "timeUnixNano": "1"}],
                                    "aggregationTemporality": 2,
                                    "isMonotonic": True,
                                },
                            }
                        ]
                    }
                ]
            }
        ]
    }
    status, _, _ = post(
        daemon.url("otlp_http", "/v1/metrics"),
        json.dumps(metrics_json).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 200
    logs = ExportLogsServiceRequest()
    record = logs.resource_logs.add().scope_logs.add().log_records.add()
    record.body.string_value = "over http"
    record.trace_id = b"\x01" * 16
    status, _, _ = post(
        daemon.url("otlp_http", "/v1/logs"),
        logs.SerializeToString(),
        {"Content-Type": "application/x-protobuf"},
    )
    assert status == 200
    assert upstream.wait_for(lambda: upstream.metrics and upstream.logs)
    point = upstream.metrics[0].resource_metrics[0].scope_metrics[0].metrics[0].sum.data_points[0]
    assert point.as_int == 5
    received = upstream.logs[0].resource_logs[0].scope_logs[0].log_records[0]
    assert received.body.string_value == "over http"
    assert received.trace_id == b"\x01" * 16


def test_tls_upstream_with_private_ca(make_daemon, tmp_path) -> None:
    import subprocess as sp
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    sp.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    upstream = RecordingUpstream()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(upstream, server)
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        config = {
            "exporters": {
                "otlp": {
                    "endpoint": f"https://localhost:{port}",
                    "ca_file": str(cert),
                    "retry": {"initial_interval": "50ms", "max_interval": "500ms"},
                    "shutdown_timeout": "1s",
                }
            }
        }
        daemon = make_daemon(config).start()
        sender = Sender(daemon.addresses["otlp_grpc"])
        assert sender.send(5)
        sender.close()
        assert upstream.wait_for(lambda: len(upstream.spans()) == 5), daemon.log()
    finally:
        server.stop(None)
