"""Servers the benchmarks start as separate processes.

``python bench/_servers.py baseline PORTFILE``: a bare OTLP/gRPC trace server that parses each
request and acknowledges it (the floor any Python receiver pays).
``python bench/_servers.py sink PORTFILE``: a null upstream that acknowledges without parsing.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

OK = ExportTraceServiceResponse().SerializeToString()


async def serve(mode: str, port_file: Path) -> None:
    async def parse_and_ack(body: bytes, context: object) -> bytes:
        ExportTraceServiceRequest.FromString(body)
        return OK

    async def ack(body: bytes, context: object) -> bytes:
        return OK

    handler = parse_and_ack if mode == "baseline" else ack
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                service, {"Export": grpc.unary_unary_rpc_method_handler(handler)}
            )
            for service in (
                "opentelemetry.proto.collector.trace.v1.TraceService",
                "opentelemetry.proto.collector.metrics.v1.MetricsService",
                "opentelemetry.proto.collector.logs.v1.LogsService",
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    port_file.write_text(str(port))
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], Path(sys.argv[2])))
