"""OTLP/HTTP receiver (default 127.0.0.1:4318): ``/v1/traces``, ``/v1/metrics``, ``/v1/logs``.

Protobuf and JSON bodies, gzip or deflate encoded. The body limit applies to the inflated
size and inflation stops as soon as it is passed, so a small compressed bomb costs nothing.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import TYPE_CHECKING, Any

from aiohttp import web
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from agent_sre_daemon.errors import (
    InvalidArgumentError,
    PayloadTooLargeError,
    ReceiverError,
    UnsupportedMediaTypeError,
)
from agent_sre_daemon.http_site import PARSE_OFF_LOOP_BYTES, start_site
from agent_sre_daemon.ingest.counting import count_log_records, count_metrics
from agent_sre_daemon.ingest.decoding import decode_protobuf
from agent_sre_daemon.ingest.otlp_json import parse_otlp_json, to_otlp_json

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from agent_sre_daemon.http_site import ListenerLimits
    from agent_sre_daemon.ingest.pipeline import Pipeline


PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class OtlpHttpReceiver:
    """An aiohttp server for the three OTLP/HTTP paths."""

    def __init__(
        self,
        pipeline: Pipeline,
        endpoint: str,
        max_body_bytes: int,
        limits: ListenerLimits | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.endpoint = endpoint
        self.max_body_bytes = max_body_bytes
        self.limits = limits
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_post("/v1/traces", self._traces)
        app.router.add_post("/v1/metrics", self._metrics)
        app.router.add_post("/v1/logs", self._logs)
        return app

    async def start(self) -> str:
        """Binds and starts serving; returns the bound ``host:port``."""
        # auto_decompress off: we inflate ourselves, with the limit applied as we go.
        self._runner, address = await start_site(
            self.app(),
            self.endpoint,
            listener="otlp_http",
            limits=self.limits,
            auto_decompress=False,
        )
        return address

    async def stop(self, grace: float) -> None:
        if self._runner is not None:
            await self._runner.shutdown()
            await self._runner.cleanup()
            self._runner = None

    async def _traces(self, request: web.Request) -> web.Response:
        async def accept(message: Any, body: bytes, is_json: bool) -> web.Response:
            result = await self.pipeline.export_traces(
                message, "http", len(body), None if is_json else body
            )
            response = ExportTraceServiceResponse()
            if result.rejected:
                response.partial_success.rejected_spans = result.rejected
                response.partial_success.error_message = result.error_message
            return _ok(response, is_json)

        return await self._handle(request, "traces", ExportTraceServiceRequest, accept)

    async def _metrics(self, request: web.Request) -> web.Response:
        async def accept(message: Any, body: bytes, is_json: bool) -> web.Response:
            await self.pipeline.export_passthrough(
                "metrics", message, None, "http", count_metrics(message)
            )
            return _ok(ExportMetricsServiceResponse(), is_json)

        return await self._handle(request, "metrics", ExportMetricsServiceRequest, accept)

    async def _logs(self, request: web.Request) -> web.Response:
        async def accept(message: Any, body: bytes, is_json: bool) -> web.Response:
            await self.pipeline.export_passthrough(
                "logs", message, None, "http", count_log_records(message)
            )
            return _ok(ExportLogsServiceResponse(), is_json)

        return await self._handle(request, "logs", ExportLogsServiceRequest, accept)

    async def _handle(
        self, request: web.Request, signal: str, message_type: Any, accept: Any
    ) -> web.Response:
        is_json = False
        try:
            is_json = _is_json(request.content_type)
            body = await self._read_body(request)
            if len(body) > PARSE_OFF_LOOP_BYTES:
                message = await asyncio.to_thread(_decode, body, message_type, is_json)
            else:
                message = _decode(body, message_type, is_json)
            response: web.Response = await accept(message, body, is_json)
            return response
        except ReceiverError as exc:
            self.pipeline.refused("http", signal, exc)
            return _error(exc, is_json)

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise PayloadTooLargeError(
                f"body of {request.content_length} bytes exceeds the {limit}-byte limit"
            )
        raw = bytearray()
        async for chunk in request.content.iter_chunked(65536):
            raw += chunk
            if len(raw) > limit:
                raise PayloadTooLargeError(f"body exceeds the {limit}-byte limit")
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding in ("", "identity"):
            return bytes(raw)
        if encoding == "gzip":
            return _inflate(bytes(raw), zlib.MAX_WBITS | 16, limit)
        if encoding == "deflate":
            return _inflate(bytes(raw), zlib.MAX_WBITS, limit)
        raise UnsupportedMediaTypeError(
            f"Content-Encoding {encoding!r} is not supported (use gzip, deflate or none)"
        )


def _decode(body: bytes, message_type: Any, is_json: bool) -> Any:
    """The request's message (a worker thread's work for a large body)."""
    if is_json:
        return parse_otlp_json(body, message_type)
    return decode_protobuf(message_type, body)


def _is_json(content_type: str) -> bool:
    if content_type == PROTOBUF:
        return False
    if content_type == JSON:
        return True
    raise UnsupportedMediaTypeError(
        f"Content-Type {content_type or '(none)'!r} is not supported; use {PROTOBUF} or {JSON}"
    )


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise InvalidArgumentError(f"body is not valid compressed data: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLargeError(f"inflated body exceeds the {limit}-byte limit")
    if not inflater.eof:
        raise InvalidArgumentError("compressed body is truncated")
    return out


def _ok(response: Message, is_json: bool) -> web.Response:
    if is_json:
        return web.Response(body=to_otlp_json(response), content_type=JSON)
    return web.Response(body=response.SerializeToString(), content_type=PROTOBUF)


def _error(exc: ReceiverError, is_json: bool) -> web.Response:
    status = status_pb2.Status(code=exc.grpc_code.value[0], message=exc.message)
    headers = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    if is_json:
        return web.Response(
            status=exc.http_status, body=to_otlp_json(status), content_type=JSON, headers=headers
        )
    return web.Response(
        status=exc.http_status,
        body=status.SerializeToString(),
        content_type=PROTOBUF,
        headers=headers,
    )
