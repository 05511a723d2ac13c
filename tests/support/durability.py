"""A gRPC sender that remembers which spans the daemon acknowledged."""

from __future__ import annotations

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from tests.support.spans import make_request


class Sender:
    """Sends 50-span requests over gRPC and remembers the span ids of acknowledged ones."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.stub = trace_service_pb2_grpc.TraceServiceStub(self.channel)
        self.acked: set[bytes] = set()
        self.refused: list[grpc.StatusCode] = []

    def send(self, spans: int = 50) -> bool:
        request = make_request(spans)
        try:
            self.stub.Export(request, timeout=5)
        except grpc.RpcError as exc:
            self.refused.append(exc.code())
            return False
        self.acked |= {s.span_id for s in request.resource_spans[0].scope_spans[0].spans}
        return True

    def close(self) -> None:
        self.channel.close()
