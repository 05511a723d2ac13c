"""``api: passthrough``: forwarded and counted, never read or priced."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_sre.gateway.plan import CallPlan
from agent_sre.gateway.providers.base import PlainHttp

if TYPE_CHECKING:
    from agent_sre.config import ProxyRoute


class Passthrough(PlainHttp):
    api = "passthrough"

    def plan(self, route: ProxyRoute, method: str, path: str, body: bytes) -> CallPlan:
        return CallPlan(self.api, "", None, body=body)


PROVIDER = Passthrough()
