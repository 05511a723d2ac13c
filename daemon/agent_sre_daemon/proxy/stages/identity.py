"""Who makes the call and the trace it belongs to, from its headers."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from agent_sre.gateway.identity import call_identity, trace_context

if TYPE_CHECKING:
    from aiohttp import web

    from agent_sre_daemon.proxy.call import Call
    from agent_sre_daemon.proxy.stage import StageSlot


class IdentityStage:
    name = "identity"
    slot: StageSlot = "identity"

    async def on_request(self, call: Call) -> web.StreamResponse | None:
        headers = call.request.headers
        call.identity = call_identity(headers)
        call.trace = trace_context(headers, os.urandom)
        return None

    async def on_response(self, call: Call) -> None:
        return None
