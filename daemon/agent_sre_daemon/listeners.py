"""The limits the node's listeners share, as a component: the open files limit raised at
start, one connection cap per listener, the count of connections refused at it.

The listeners themselves (proxy, OTLP receivers, metrics, admin) take the limits from
``NodeContext.listeners`` (:mod:`agent_sre_daemon.http_site`); this component owns their
metrics and tells, on reload, that a new cap needs a restart.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, ClassVar

from agent_sre_daemon.component import Component, Prepared
from agent_sre_daemon.http_site import ListenerMetrics, raise_open_files_limit

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from agent_sre.config import Config
    from agent_sre_daemon.component import NodeContext

log = logging.getLogger("agent_sre.listeners")


class Listeners(Component):
    """Starts first: raises the open files limit before any listener binds."""

    name: ClassVar[str] = "listeners"
    title: ClassVar[str] = "Listeners"

    def __init__(self, context: NodeContext) -> None:
        self.context = context

    @classmethod
    def register_metrics(cls, registry: CollectorRegistry) -> ListenerMetrics:
        return ListenerMetrics(registry)

    async def start(self) -> dict[str, str]:
        soft, _ = raise_open_files_limit()
        log.info(
            "open files limit %d (connections per listener: %d%s)",
            soft,
            self.context.listeners.cap(),
            ", node.max_connections_per_listener" if self.configured(self.context.config) else "",
        )
        return {}

    async def prepare_reload(self, new: Config) -> Prepared:
        changed = self.configured(new) != self.configured(self.context.config)
        return Prepared(needs_restart=["node.max_connections_per_listener"] if changed else [])

    @staticmethod
    def configured(config: Config) -> int | None:
        return config.node.max_connections_per_listener
