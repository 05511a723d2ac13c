"""A2A routes: the depth of each hand-off, its cap, what goes upstream with it, and what its
span says (the decisions are in :mod:`agent_sre.gateway.providers.a2a`).

Two small stages, because a hand-off is judged before the budgets (its depth) and its
headers are set after the routing stage built them:

- :class:`DelegationStage` (identity slot, after the identity stage): reads the caller's
  depth and refuses a hand-off past the cap; on the way back writes the span's delegation
  attributes and gives every JSON-RPC error the proxy answered the request's ``id``.
- :class:`DelegationHeaders` (routing slot, after the routing stage): the depth onward in
  ``baggage`` and ``X-Agent-Delegation-Depth``; an agent card's URLs rewritten to the proxy.

Every other route costs each stage one comparison.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from aiohttp import web

from agent_sre.gateway.providers import a2a
from agent_sre.jsonbody import read_json
from agent_sre.tracing import conventions as conv
from agent_sre_daemon.errors import proxy_error

if TYPE_CHECKING:
    from agent_sre_daemon.proxy.call import Call
    from agent_sre_daemon.proxy.stage import StageSlot

API = "a2a"
CALLER = "agent.delegation.caller"
CALLEE = "agent.delegation.callee"
TASK_ID = "agent.delegation.task.id"
TASK_STATE = "a2a.task.state"
RPC_SYSTEM = "rpc.system"
RPC_METHOD = "rpc.method"
RPC_REQUEST_ID = "rpc.jsonrpc.request_id"
RPC_ERROR_CODE = "rpc.jsonrpc.error_code"
ERROR_HEADER = "x-agent-sre-error"


class DelegationStage:
    name = "delegation"
    slot: StageSlot = "identity"

    # hot path: per proxied call (one comparison off A2A routes)
    async def on_request(self, call: Call) -> web.StreamResponse | None:
        if call.route.config.api != API or not call.plan.delegation:
            return None
        headers = call.request.headers
        depth = a2a.caller_depth(
            headers.getall(a2a.DEPTH_HEADER, []),
            a2a.baggage_members(headers.getall("baggage", [])),
        )
        if isinstance(depth, str):
            call.fail("bad_request", depth)
            return proxy_error(API, "bad_request", depth)
        depth += 1
        call.record.attributes[conv.AGENT_DELEGATION_DEPTH] = depth
        refusal = a2a.too_deep(depth, call.route.config.max_delegation_depth, call.plan.callee)
        if refusal:
            call.fail("delegation_too_deep", refusal)
            return proxy_error(API, "delegation_too_deep", refusal)
        return None

    async def on_response(self, call: Call) -> None:
        if call.route.config.api != API:
            return
        plan, facts, attrs = call.plan, call.facts, call.record.attributes
        if plan.rpc_method:
            attrs[RPC_SYSTEM] = "jsonrpc"
            attrs[RPC_METHOD] = plan.rpc_method
            request_id = plan.mcp_request_id
            if isinstance(request_id, (str, int)) and not isinstance(request_id, bool):
                attrs[RPC_REQUEST_ID] = str(request_id)[: a2a.MAX_TEXT]
        if plan.delegation:
            attrs[CALLEE] = plan.callee
            if call.identity.agent_id:
                attrs[CALLER] = call.identity.agent_id
        task = facts.task_id or plan.task_id
        if task:
            attrs[TASK_ID] = task
        if facts.task_state:
            attrs[TASK_STATE] = facts.task_state
        if facts.rpc_error_code is not None:
            attrs[RPC_ERROR_CODE] = facts.rpc_error_code
        if facts.tool_error is not None and call.record.error is None:
            kind = "task_failed" if facts.rpc_error_code is None else "a2a_error"
            call.fail(kind, facts.tool_error)
        _answer_id(call)


def _answer_id(call: Call) -> None:
    """The proxy's own JSON-RPC error answers carry the request's ``id`` (the shape is built
    where the request is not at hand)."""
    response = call.response
    request_id = call.plan.mcp_request_id
    if (
        request_id is None
        or not isinstance(response, web.Response)
        or response.prepared
        or ERROR_HEADER not in response.headers
        or not isinstance(response.body, bytes)
    ):
        return
    try:
        body = read_json(response.body)  # our own small error body
    except ValueError:
        return
    if isinstance(body, dict) and body.get("jsonrpc") == "2.0" and body.get("id") is None:
        body["id"] = request_id
        response.body = json.dumps(body).encode()


class DelegationHeaders:
    name = "delegation_headers"
    slot: StageSlot = "routing"

    # hot path: per proxied call (one comparison off A2A routes)
    async def on_request(self, call: Call) -> web.StreamResponse | None:
        if call.route.config.api != API:
            return None
        plan, headers = call.plan, call.upstream_headers
        if plan.delegation:
            depth = call.record.attributes.get(conv.AGENT_DELEGATION_DEPTH)
            if isinstance(depth, int):
                members = a2a.baggage_members(call.request.headers.getall("baggage", []))
                headers.popall("baggage", None)
                headers["baggage"] = a2a.onward_baggage(members, depth)
                headers[a2a.DEPTH_HEADER] = str(depth)
        elif plan.agent_card:
            base = a2a.proxy_base(call.request.host, call.route.prefix)
            if base is not None:
                headers["Accept-Encoding"] = "identity"  # the card is read and rewritten
                upstream = call.route.upstream

                async def rewrite(chunk: bytes) -> bytes:
                    return a2a.rewrite_card(chunk, upstream, base)

                call.add_chunk_tap(rewrite)
        return None

    async def on_response(self, call: Call) -> None:
        return None
