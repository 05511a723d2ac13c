"""Who makes the call and the trace it belongs to, from its headers."""

from __future__ import annotations

import dataclasses
import os
import random
from typing import TYPE_CHECKING

from agent_sre.gateway.identity import call_identity, redacted_identity, trace_context
from agent_sre_daemon.errors import proxy_error

if TYPE_CHECKING:
    from collections.abc import Callable

    from aiohttp import web

    from agent_sre.gateway.agent_keys import AgentKeys
    from agent_sre.replay.redaction import Redactor
    from agent_sre_daemon.proxy.call import Call
    from agent_sre_daemon.proxy.stage import StageSlot


_IDS = random.Random(os.urandom(32))
new_ids = _IDS.randbytes
"""Span and trace ids: unique, not secret (as OpenTelemetry's SDKs make them), so drawn in
process; ``os.urandom`` is a system call per id, which this path makes per call."""


class IdentityStage:
    """Headers (``X-Agent-*``, baggage) name the agent, unless an agent key does: then the
    key decides, and the header that carried it never goes upstream. An id holding a
    credential is redacted here, before any budget, span or store sees it."""

    name = "identity"
    slot: StageSlot = "identity"

    def __init__(self, keys: Callable[[], AgentKeys], redactor: Callable[[], Redactor]) -> None:
        self._keys = keys
        self._redactor = redactor

    async def on_request(self, call: Call) -> web.StreamResponse | None:
        headers = call.request.headers
        call.identity = redacted_identity(call_identity(headers), self._redactor())
        call.trace = trace_context(headers, new_ids)
        keys = self._keys()
        if keys.enabled:
            check = keys.check(headers)
            if check.header is not None:
                call.hidden_headers.add(check.header)
            if check.refusal is not None:
                call.fail("agent_key_invalid", check.refusal)
                return proxy_error(call.route.config.api, "agent_key_invalid", check.refusal)
            if check.agent_id is not None:
                call.identity = dataclasses.replace(call.identity, agent_id=check.agent_id)
        return None

    async def on_response(self, call: Call) -> None:
        return None
