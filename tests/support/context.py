"""A node context for building one component in-process (unit tests)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from agent_sre_daemon.clock import ManualClock
from agent_sre_daemon.component import NodeContext
from agent_sre_daemon.ingest.pipeline import Pipeline
from agent_sre_daemon.signals import SignalBus

if TYPE_CHECKING:
    from agent_sre.config import Config


def node_context(
    config: Config, clock: ManualClock | None = None, node_name: str = "n"
) -> NodeContext:
    """A context with a real bus and span pipeline (no queue), on a manual clock."""
    clock = clock or ManualClock()
    registry = CollectorRegistry()
    return NodeContext(
        config=config,
        clock=clock,
        registry=registry,
        bus=SignalBus(registry),
        pipeline=Pipeline(config, {}, Pipeline.register_metrics(registry), clock),
        environ={},
        node_name=node_name,
    )
