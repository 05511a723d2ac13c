"""Every error the daemon returns, and its status, in one place.

Receivers follow the OTLP specification's table: a retryable refusal is UNAVAILABLE / 503
(with a Retry-After hint); bad input is INVALID_ARGUMENT / 400; an oversized message is
RESOURCE_EXHAUSTED / 413 (HTTP has a status of its own for it); a wrong content type is 415.
The proxy answers in the provider's own error shape with the status of :data:`PROXY_STATUS`.
A storage failure (disk full, I/O error) is retryable: UNAVAILABLE / 503, reason ``storage``.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import grpc
from aiohttp import web

from agent_sre.gateway.providers import PROVIDERS

if TYPE_CHECKING:
    from agent_sre_daemon.stores.errors import StorageError

STORAGE_RETRY_AFTER = 5.0


class ReceiverError(Exception):
    """A refusal with a message for the client."""

    grpc_code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    http_status: int = 500
    reason: str = "internal"
    retry_after: float | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgumentError(ReceiverError):
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = 400
    reason = "invalid"


class PayloadTooLargeError(ReceiverError):
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    http_status = 413
    reason = "too_large"


class UnsupportedMediaTypeError(ReceiverError):
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = 415
    reason = "content_type"


class UnavailableError(ReceiverError):
    """Retryable: the queue is full, the disk failed, or the daemon is shutting down."""

    grpc_code = grpc.StatusCode.UNAVAILABLE
    http_status = 503
    reason = "queue_full"

    def __init__(self, message: str, retry_after: float = 1.0, reason: str = "queue_full") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.reason = reason


def storage_unavailable(exc: StorageError | str) -> UnavailableError:
    """The answer to a request the durable queue could not store (the client retries)."""
    return UnavailableError(
        f"the daemon cannot store requests right now ({exc}); retry later",
        retry_after=STORAGE_RETRY_AFTER,
        reason="storage",
    )


# gRPC codes an OTLP exporter retries (opentelemetry-proto specification); RESOURCE_EXHAUSTED
# only when the server says when to come back, which ours does through RetryInfo.
RETRYABLE_GRPC_CODES = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
    }
)


def admin_error(status: int, type_: str, message: str) -> web.Response:
    """The admin API's error body: ``{"error": {"type": ..., "message": ...}}``."""
    return web.json_response({"error": {"type": type_, "message": message}}, status=status)


def admin_storage_unavailable(what: str, exc: BaseException) -> web.HTTPServiceUnavailable:
    """A read the store could not serve (a full or failing disk): 503 ``storage_unavailable``
    with a Retry-After, raised from a handler (never a 500)."""
    body = {
        "error": {
            "type": "storage_unavailable",
            "message": f"{what} cannot be read right now ({type(exc).__name__}: {exc}); "
            "retry later",
        }
    }
    return web.HTTPServiceUnavailable(
        text=json.dumps(body),
        content_type="application/json",
        headers={"Retry-After": str(int(STORAGE_RETRY_AFTER))},
    )


class AdminInputError(web.HTTPClientError):
    """A body or query parameter of an admin request refused by its gate
    (:mod:`agent_sre_daemon.admin.inputs`): 400 ``invalid_argument`` naming the field, or 413
    ``too_large`` for a body past the admin API's limit. Raised from a handler, it is the
    answer (the admin error body), wherever the route is mounted."""

    def __init__(self, message: str, status: int = 400) -> None:
        self.status_code = status
        self.message = message
        kind = "too_large" if status == 413 else "invalid_argument"
        super().__init__(
            text=json.dumps({"error": {"type": kind, "message": message}}),
            content_type="application/json",
        )


# -- the proxy's own answers ------------------------------------------------------------
#
# Statuses are chosen against the official SDKs' retry rules (they retry 408, 409, 429 and
# 5xx, and obey ``x-should-retry``):
# - refusals a retry cannot fix (budget_exceeded, agent_blocked, budget_unavailable,
#   circuit_open: the cool-down is in Retry-After),
#   model_unpriced) are 403
#   with ``x-should-retry: false``, so the SDK raises PermissionDeniedError at once;
# - route_not_found is 404, and 400 for absolute-URI and CONNECT requests (no open proxy);
# - agent_key_invalid (a missing, unknown or revoked agent key) is 401: not retried;
# - invalid_path (a dot segment, or one that decodes to a slash or control character) is 400;
# - request_timeout (a body that did not arrive within the body timeout) is 408 with
#   ``x-should-retry: false`` (a client that slow would only be slow again);
# - request_too_large is 413; proxy_busy (too many request bytes in flight) is 503 with
#   Retry-After: the SDKs retry it, and room frees as calls finish;
# - agent_throttled is 429 with Retry-After: waiting does fix it, so the SDK's own retry is
#   right when the wait is short (up to a minute, which SDKs honour); a longer wait says
#   ``x-should-retry: false`` so no doomed retries are sent;
# - replay_mismatch (a call a replay session has no recorded answer for) is 409 with
#   ``x-should-retry: false``: the same request would never match;
# - upstream_unreachable (connect error) is 502 and upstream_timeout 504: a direct call would
#   have failed with a connection error the SDK retries, and so it still does;
# - client_disconnected (the client left while the call was held, e.g. by a chaos delay,
#   so it was never forwarded) is 499, as nginx records it: nobody is left to read it.
# The body is the provider's own error shape (``Provider.error_body``).
# On an A2A route (JSON-RPC) the body is a JSON-RPC error response and a refusal no retry
# can change is HTTP 200, as A2A servers answer JSON-RPC errors: the A2A SDK then raises the
# error with its code and message (it reads neither from any other status) and retries
# nothing; ``x-agent-sre-error`` and ``x-should-retry: false`` still say what happened.
# What a retry can cure (429, 5xx) keeps its status, so HTTP clients that retry still do.
# delegation_too_deep (a hand-off past the route's max_delegation_depth) is such a refusal.

PROXY_STATUS = {
    "budget_exceeded": 403,
    "agent_blocked": 403,
    "budget_unavailable": 403,
    "circuit_open": 403,
    "model_unpriced": 403,
    "agent_throttled": 429,
    "route_not_found": 404,
    "bad_request": 400,
    "invalid_path": 400,
    "agent_key_invalid": 401,
    "request_timeout": 408,
    "request_too_large": 413,
    "proxy_busy": 503,
    "upstream_unreachable": 502,
    "upstream_timeout": 504,
    "replay_mismatch": 409,
    "client_disconnected": 499,
    "delegation_too_deep": 403,
}
"""HTTP status of every error the proxy itself answers, by its ``type``."""

SDK_MAX_RETRY_AFTER = 60.0
"""The longest Retry-After the official SDKs wait for; a longer throttle tells them not to
retry at all (``x-should-retry: false``) rather than retry blind on their own back-off."""

NOT_AN_OPEN_PROXY = "agent-sre is not an open proxy: send requests to a configured route prefix"


def proxy_error(
    api: str,
    kind: str,
    message: str,
    retry_after: float | None = None,
    status: int | None = None,
) -> web.Response:
    """The proxy's answer of type ``kind`` in the ``api`` shape (``status`` overrides the
    table: a route_not_found for a request that names no route is 400)."""
    status = status or PROXY_STATUS.get(kind, 400)
    headers = {"x-agent-sre-error": kind}
    if status == 429:
        soon = retry_after is not None and retry_after <= SDK_MAX_RETRY_AFTER
        headers["x-should-retry"] = "true" if soon else "false"
    elif status < 500:
        headers["x-should-retry"] = "false"
    if retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(retry_after)))
    provider = PROVIDERS[api]
    body = json.dumps(provider.error_body(kind, message, status)).encode()
    headers.update(provider.error_headers(kind, status))
    if api in JSON_RPC_APIS and status < 500 and status != 429:
        status = 200
    return web.Response(status=status, body=body, headers=headers, content_type="application/json")


JSON_RPC_APIS = frozenset({"a2a"})
"""APIs whose refusals are JSON-RPC errors answered with HTTP 200 (see above)."""
