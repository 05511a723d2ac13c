"""The OTLP receivers as one component: gRPC (4317) and HTTP (4318), both optional."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, ClassVar

from agent_sre_daemon.component import Component, Prepared
from agent_sre_daemon.ingest.otlp_grpc import OtlpGrpcReceiver
from agent_sre_daemon.ingest.otlp_http import OtlpHttpReceiver

if TYPE_CHECKING:
    from agent_sre.config import Config
    from agent_sre_daemon.component import NodeContext

log = logging.getLogger("agent_sre.receivers")

MIB = 1024 * 1024


class OtlpReceivers(Component):
    """Binds the configured receivers; stops them first on shutdown (intake ends)."""

    name: ClassVar[str] = "receivers"

    def __init__(self, context: NodeContext) -> None:
        self.context = context
        otlp = context.config.receivers.otlp
        self.grpc = (
            OtlpGrpcReceiver(
                context.pipeline,
                otlp.grpc.endpoint,
                int(otlp.grpc.max_recv_msg_size_mib * MIB),
                limits=context.listeners,
            )
            if otlp.grpc is not None
            else None
        )
        self.http = (
            OtlpHttpReceiver(
                context.pipeline,
                otlp.http.endpoint,
                int(otlp.http.max_request_body_size_mib * MIB),
                limits=context.listeners,
            )
            if otlp.http is not None
            else None
        )

    async def start(self) -> dict[str, str]:
        bound = {}
        if self.grpc is not None:
            bound["otlp_grpc"] = await self.grpc.start()
        if self.http is not None:
            bound["otlp_http"] = await self.http.start()
        return bound

    async def stop(self, deadline: float) -> None:
        """Stops accepting at once; requests in progress may finish until ``deadline``."""
        grace = max(0.0, deadline - self.context.clock.monotonic())
        if self.grpc is not None:
            await self.grpc.stop(grace)
        if self.http is not None:
            await self.http.stop(grace)

    async def prepare_reload(self, new: Config) -> Prepared:
        changed = new.receivers != self.context.config.receivers
        return Prepared(needs_restart=["receivers"] if changed else [])
