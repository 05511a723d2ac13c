"""Every error the proxy itself answers, in the provider's own error body shape.

One table maps a refusal type to its HTTP status. Statuses are chosen against the official
SDKs' retry rules (they retry 408, 409, 429 and 5xx, and obey ``x-should-retry``):

- refusals that a retry cannot fix (``budget_exceeded``, ``agent_blocked``,
  ``budget_unavailable``) are 403 with ``x-should-retry: false``, so the SDK raises
  ``PermissionDeniedError`` at once and no retry is sent;
- ``route_not_found`` is 404, and 400 for absolute-URI and CONNECT requests (no open
  proxy: only the configured upstreams are reachable);
- ``agent_throttled`` is 429 with ``Retry-After``: waiting *does* fix it, so the SDK's own
  retry is the right behaviour when the wait is short (up to a minute, which SDKs honour);
  a longer wait says ``x-should-retry: false`` so no doomed retries are sent;
- ``upstream_unreachable`` (connect error) is 502 and ``upstream_timeout`` 504: a direct call
  would have failed with a connection error the SDK retries, and so it still does.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Literal

from aiohttp import web

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

ApiShape = Literal["openai", "anthropic", "tool", "mcp", "passthrough"]

SDK_MAX_RETRY_AFTER = 60.0
"""The longest Retry-After the official SDKs wait for; a longer throttle tells them not to
retry at all (``x-should-retry: false``) rather than retry blind on their own back-off."""

STATUS = {
    "budget_exceeded": 403,
    "agent_blocked": 403,
    "budget_unavailable": 403,
    "agent_throttled": 429,
    "route_not_found": 404,
    "bad_request": 400,
    "upstream_unreachable": 502,
    "upstream_timeout": 504,
}

_ANTHROPIC_TYPES = {
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    400: "invalid_request_error",
    502: "api_error",
    504: "api_error",
}


def error_body(api: ApiShape, kind: str, message: str) -> dict[str, object]:
    """The provider's error JSON carrying our machine-readable ``kind``.

    OpenAI: ``{"error": {"message", "type", "param", "code"}}``. Anthropic:
    ``{"type": "error", "error": {"type", "message"}}`` — its ``error.type`` is our kind, so
    clients switch on one field for both providers.
    """
    if api == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}}
    if api == "openai":
        return {"error": {"message": message, "type": kind, "param": None, "code": kind}}
    return {"error": {"type": kind, "message": message}}


def error_response(
    api: ApiShape,
    kind: str,
    message: str,
    retry_after: float | None = None,
    status: int | None = None,
) -> web.Response:
    """The HTTP response for a refusal of type ``kind`` (``status`` overrides the table)."""
    status = status or STATUS.get(kind, 400)
    headers = {"x-agent-sre-error": kind}
    if status == 429:
        # SDKs honour Retry-After up to a minute; past that they would retry blind
        soon = retry_after is not None and retry_after <= SDK_MAX_RETRY_AFTER
        headers["x-should-retry"] = "true" if soon else "false"
    elif status < 500:
        headers["x-should-retry"] = "false"
    if retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(retry_after)))
    body = json.dumps(error_body(api, kind, message)).encode()
    return web.Response(status=status, body=body, headers=headers, content_type="application/json")


NOT_AN_OPEN_PROXY = "agent-sre is not an open proxy: send requests to a configured route prefix"


@web.middleware
async def refuse_unrouted(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turns aiohttp's own 404/405 (e.g. CONNECT, authority-form targets) into our shape."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status in (404, 405):
            return error_response("passthrough", "route_not_found", NOT_AN_OPEN_PROXY, status=400)
        raise
