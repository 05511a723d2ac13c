"""OTLP/gRPC receiver (default 127.0.0.1:4317): TraceService, MetricsService, LogsService.

Requests arrive as raw bytes (no generated servicer) so decoding errors are ours to report
and metrics and logs can be forwarded as the very bytes that came in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from agent_sre_daemon.errors import ReceiverError
from agent_sre_daemon.ingest.counting import count_log_records, count_metrics
from agent_sre_daemon.ingest.decoding import decode_protobuf

if TYPE_CHECKING:
    from agent_sre_daemon.http_site import ListenerLimits
    from agent_sre_daemon.ingest.pipeline import Pipeline


Context = grpc.aio.ServicerContext[Any, Any]
# An empty Export*ServiceResponse (no partial_success) encodes to no bytes for all signals.
_EMPTY_RESPONSE = b""

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
METRICS_SERVICE = "opentelemetry.proto.collector.metrics.v1.MetricsService"
LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"


def retry_info_trailer(code: grpc.StatusCode, message: str, seconds: float) -> tuple[str, bytes]:
    """A ``grpc-status-details-bin`` trailer carrying ``google.rpc.RetryInfo``."""
    retry = error_details_pb2.RetryInfo(retry_delay=Duration(seconds=int(seconds)))
    status = status_pb2.Status(code=code.value[0], message=message)
    status.details.add().Pack(retry)
    return ("grpc-status-details-bin", status.SerializeToString())


class OtlpGrpcReceiver:
    """Serves the three OTLP services on one gRPC server."""

    def __init__(
        self,
        pipeline: Pipeline,
        endpoint: str,
        max_recv_msg_bytes: int,
        limits: ListenerLimits | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.endpoint = endpoint
        self.max_recv_msg_bytes = max_recv_msg_bytes
        self.limits = limits
        self._server: grpc.aio.Server | None = None

    async def start(self) -> str:
        """Binds and starts serving; returns the bound ``host:port``."""
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", self.max_recv_msg_bytes),
            ("grpc.so_reuseport", 0),
        ]
        if self.limits is not None:
            # grpcio's connection quota: past it an accepted connection is closed at once
            # (the client sees UNAVAILABLE and retries), like the HTTP listeners' cap
            options.append(("grpc.max_allowed_incoming_connections", self.limits.cap()))
        server = grpc.aio.server(options=options)
        server.add_generic_rpc_handlers(
            (
                _service(TRACE_SERVICE, self._export_traces),
                _service(METRICS_SERVICE, self._export_metrics),
                _service(LOGS_SERVICE, self._export_logs),
            )
        )
        host, _, _ = self.endpoint.rpartition(":")
        port = server.add_insecure_port(self.endpoint)
        if port == 0:
            raise OSError(f"cannot bind OTLP gRPC receiver to {self.endpoint}")
        await server.start()
        self._server = server
        return f"{host}:{port}"

    async def stop(self, grace: float) -> None:
        """Stops accepting; calls in progress get ``grace`` seconds to finish."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    async def _export_traces(self, body: bytes, context: Context) -> bytes:
        try:
            request = decode_protobuf(ExportTraceServiceRequest, body)
            result = await self.pipeline.export_traces(request, "grpc", len(body), body)
        except ReceiverError as exc:
            self.pipeline.refused("grpc", "traces", exc)
            await _abort(context, exc)
        response = ExportTraceServiceResponse()
        if result.rejected:
            response.partial_success.rejected_spans = result.rejected
            response.partial_success.error_message = result.error_message
        return response.SerializeToString()

    async def _export_metrics(self, body: bytes, context: Context) -> bytes:
        return await self._passthrough("metrics", ExportMetricsServiceRequest, body, context)

    async def _export_logs(self, body: bytes, context: Context) -> bytes:
        return await self._passthrough("logs", ExportLogsServiceRequest, body, context)

    async def _passthrough(
        self, signal: str, message_type: Any, body: bytes, context: Context
    ) -> bytes:
        """Metrics and logs: validated and counted, then forwarded as the bytes that came."""
        try:
            request = decode_protobuf(message_type, body)
            items = count_metrics(request) if signal == "metrics" else count_log_records(request)
            await self.pipeline.export_passthrough(signal, request, body, "grpc", items)
        except ReceiverError as exc:
            self.pipeline.refused("grpc", signal, exc)
            await _abort(context, exc)
        return _EMPTY_RESPONSE


def _service(name: str, handler: Any) -> grpc.GenericRpcHandler[Any, Any]:
    return grpc.method_handlers_generic_handler(
        name,
        {"Export": grpc.unary_unary_rpc_method_handler(handler)},
    )


async def _abort(context: Context, exc: ReceiverError) -> None:
    trailers: tuple[tuple[str, bytes], ...] = ()
    if exc.retry_after is not None:
        trailers = (retry_info_trailer(exc.grpc_code, exc.message, exc.retry_after),)
    await context.abort(exc.grpc_code, exc.message, trailing_metadata=trailers)
