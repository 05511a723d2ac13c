"""A small upstream OTLP/gRPC server that records what the daemon forwards."""

from __future__ import annotations

import threading
import time
from concurrent import futures
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

if TYPE_CHECKING:
    from collections.abc import Callable


class RecordingUpstream(
    trace_service_pb2_grpc.TraceServiceServicer,
    metrics_service_pb2_grpc.MetricsServiceServicer,
    logs_service_pb2_grpc.LogsServiceServicer,
):
    """Records every request; ``fail_with`` makes it refuse with a status code."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.traces: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.metrics: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self.logs: list[logs_service_pb2.ExportLogsServiceRequest] = []
        self.metadata: list[dict[str, str]] = []
        self.fail_with: grpc.StatusCode | None = None
        self.reject_spans = 0
        self.retry_after: float | None = None
        """When set: refuse with RESOURCE_EXHAUSTED carrying RetryInfo of this many seconds."""
        self.calls = 0
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> RecordingUpstream:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(self, server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(self, server)
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- services -----------------------------------------------------------------------

    def _record(self, context: grpc.ServicerContext, box: list[Any], request: Any) -> bool:
        with self._lock:
            self.calls += 1
            if self.fail_with is not None:
                context.abort(self.fail_with, "upstream says no")
            if self.retry_after is not None:
                retry = error_details_pb2.RetryInfo()
                retry.retry_delay.FromTimedelta(timedelta(seconds=self.retry_after))
                status = status_pb2.Status(code=8, message="slow down")
                status.details.add().Pack(retry)
                context.abort_with_status(_Status(status))
            box.append(request)
            self.metadata.append(dict(context.invocation_metadata()))
        return True

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
            self._record(context, self.traces, request)
            response = trace_service_pb2.ExportTraceServiceResponse()
            if self.reject_spans:
                response.partial_success.rejected_spans = self.reject_spans
                response.partial_success.error_message = "test rejects some"
            return response
        if isinstance(request, metrics_service_pb2.ExportMetricsServiceRequest):
            self._record(context, self.metrics, request)
            return metrics_service_pb2.ExportMetricsServiceResponse()
        self._record(context, self.logs, request)
        return logs_service_pb2.ExportLogsServiceResponse()

    # -- reading ------------------------------------------------------------------------

    def spans(self) -> list[tuple[Any, Any]]:
        """Every (resource, span) received so far."""
        with self._lock:
            requests = list(self.traces)
        return [
            (rs.resource, span)
            for request in requests
            for rs in request.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]

    def span_ids(self) -> set[bytes]:
        return {span.span_id for _, span in self.spans()}

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()


def attrs(kvs: Any) -> dict[str, Any]:
    """OTLP KeyValue list -> dict of scalar values."""
    out: dict[str, Any] = {}
    for kv in kvs:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which) if which else None
    return out


class _Status(grpc.Status):  # type: ignore[misc]
    """A grpc.Status carrying google.rpc.Status details (what grpcio-status would build)."""

    def __init__(self, status: status_pb2.Status) -> None:
        self.code = grpc.StatusCode.RESOURCE_EXHAUSTED
        self.details = status.message
        self.trailing_metadata = (("grpc-status-details-bin", status.SerializeToString()),)
