"""``api: tool``: any HTTP tool; each call is a TOOL_CALL named after ``tool`` (or the route)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_sre.gateway.plan import CallPlan
from agent_sre.gateway.providers.base import PlainHttp

if TYPE_CHECKING:
    from agent_sre.config import ProxyRoute


class Tool(PlainHttp):
    api = "tool"

    def plan(self, route: ProxyRoute, method: str, path: str, body: bytes) -> CallPlan:
        return CallPlan(self.api, "", "execute_tool", body=body, tool_name=route.tool or route.name)


PROVIDER = Tool()
