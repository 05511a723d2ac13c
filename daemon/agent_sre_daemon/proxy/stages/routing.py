"""Where the call goes: the upstream URL and the headers it goes with.

The caller's credentials go through untouched unless the route injects a key; hop-by-hop
headers and the daemon's own control headers (``x-agent-sre-*``: faults asked per call, the
replay session) stay behind, here and nowhere else, so the call, its shadow copies and any
stage after this one forward none of them; the upstream's ``traceparent`` names the
proxy's span as its parent.
A rollout stage (same slot, later) may point ``call.upstream_url`` elsewhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote_plus

from multidict import CIMultiDict

from agent_sre.gateway.providers.base import CREDENTIAL_HEADERS

if TYPE_CHECKING:
    from aiohttp import web
    from multidict import CIMultiDictProxy

    from agent_sre_daemon.proxy.call import Call
    from agent_sre_daemon.proxy.stage import StageSlot

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "expect",
        "host",
        "content-length",
    }
)
_DECODABLE = ("gzip", "deflate", "identity")
CONTROL_PREFIX = "x-agent-sre-"
"""Request headers meant for the daemon itself; never forwarded."""


class RoutingStage:
    name = "routing"
    slot: StageSlot = "routing"

    async def on_request(self, call: Call) -> web.StreamResponse | None:
        route = call.route
        call.upstream_url = route.upstream + call.path + (f"?{call.query}" if call.query else "")
        headers: CIMultiDict[str] = CIMultiDict()
        hidden = call.hidden_headers
        for name, value in call.request.headers.items():
            lower = name.lower()
            if (
                lower not in HOP_BY_HOP
                and not lower.startswith(CONTROL_PREFIX)
                and (not hidden or lower not in hidden)
            ):
                headers.add(name, value)
        if call.trace is not None:
            headers["traceparent"] = call.trace.traceparent()
        if call.plan.stream:
            headers["Accept-Encoding"] = "identity"
        elif "Accept-Encoding" in headers:
            # we read JSON bodies for usage: only encodings we can decode
            wanted = [
                part.strip()
                for part in headers["Accept-Encoding"].split(",")
                if part.split(";")[0].strip().lower() in _DECODABLE
            ]
            headers["Accept-Encoding"] = ", ".join(wanted) or "identity"
        if route.injected_key is not None:
            for name in CREDENTIAL_HEADERS:
                headers.pop(name, None)
            name, value = route.provider.key_header(route.injected_key)
            headers[name] = value
            if call.query and route.provider.credential_query:  # the agent's key: not sent
                call.upstream_url = (
                    route.upstream
                    + call.path
                    + _without(call.query, route.provider.credential_query)
                )
        call.upstream_headers = headers
        return None

    async def on_response(self, call: Call) -> None:
        return None


def _without(query: str, name: str) -> str:
    """``?query`` without parameter ``name`` (``""`` when nothing is left)."""
    kept = [part for part in query.split("&") if unquote_plus(part.partition("=")[0]) != name]
    return "?" + "&".join(kept) if any(kept) else ""


def response_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """An upstream's response headers without the hop-by-hop ones."""
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        if name.lower() not in HOP_BY_HOP:
            out.add(name, value)
    return out
