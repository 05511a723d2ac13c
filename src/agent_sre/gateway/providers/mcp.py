"""``api: mcp``: MCP over streamable HTTP. A JSON-RPC ``tools/call`` is a TOOL_CALL named after
the called tool; a JSON-RPC ``error`` or ``result.isError`` marks it failed (in a JSON
answer or in a server-sent event)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent_sre.gateway.plan import CallPlan, ResponseFacts, json_object
from agent_sre.gateway.providers.base import PlainHttp

if TYPE_CHECKING:
    from agent_sre.config import ProxyRoute


class Mcp(PlainHttp):
    api = "mcp"

    def plan(self, route: ProxyRoute, method: str, path: str, body: bytes) -> CallPlan:
        plan = CallPlan(self.api, "", "execute_tool", body=body, tool_name=route.tool or route.name)
        data = json_object(body)
        if data is not None and data.get("method") == "tools/call":
            params = data.get("params")
            if isinstance(params, dict) and isinstance(params.get("name"), str):
                plan.tool_name = params["name"]
            plan.mcp_request_id = data.get("id")
        else:
            plan.operation = None  # initialize, tools/list, notifications: not a tool call
        return plan

    def facts_from_json(self, plan: CallPlan, data: dict[str, Any]) -> ResponseFacts:
        return ResponseFacts(tool_error=mcp_error(data))

    def on_event(
        self, plan: CallPlan, facts: ResponseFacts, name: bytes, data: dict[str, Any], event: bytes
    ) -> bytes:
        error = mcp_error(data)
        if error is not None:
            facts.tool_error = error
        return event


def mcp_error(message: dict[str, Any]) -> str | None:
    """The failure a JSON-RPC response reports: ``error.message``, or ``isError``."""
    error = message.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or "json-rpc error")
    result = message.get("result")
    if isinstance(result, dict) and result.get("isError") is True:
        return "tool_error"
    return None


PROVIDER = Mcp()
