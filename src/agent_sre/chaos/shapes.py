"""What each fault looks like on the wire, per API shape, so SDKs react as in production.

Error statuses and their ``error.type`` follow what the providers send (OpenAI:
``server_error``, ``rate_limit_exceeded``; Anthropic: ``api_error``, ``overloaded_error``
for 529, ``rate_limit_error``); rate limits carry the provider's own headers. Body rewrites
(malformed JSON, inflated usage, a renamed or dropped field) are functions of bytes.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

from agent_sre.jsonbody import PROXY_MAX_DEPTH, read_json

OPENAI_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("invalid_api_key", "Incorrect API key provided."),
    403: ("permission_denied", "You are not allowed to sample from this model."),
    404: ("model_not_found", "The model does not exist or you do not have access to it."),
    408: ("timeout", "Request timed out."),
    429: ("rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    500: ("server_error", "The server had an error while processing your request."),
    502: ("server_error", "Bad gateway."),
    503: ("server_error", "The engine is currently overloaded, please try again later."),
    504: ("server_error", "Gateway timeout."),
}
ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
    500: ("api_error", "Internal server error"),
    503: ("api_error", "Service unavailable"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}


def error_kind(api: str, status: int, message: str = "") -> tuple[str, str]:
    """The provider's ``error.type`` for ``status`` and its message (``message`` wins)."""
    table = ANTHROPIC_ERRORS if api == "anthropic" else OPENAI_ERRORS
    default = (
        ("api_error", "Internal server error")
        if api == "anthropic"
        else ("server_error", "The server had an error while processing your request.")
    )
    if status not in table and 400 <= status < 500:
        default = ("invalid_request_error", "Request failed.")
    kind, words = table.get(status, default)
    return kind, message or words


def rate_limit_headers(api: str, retry_after: float, now: float) -> dict[str, str]:
    """The headers a provider's 429 carries (besides ``retry-after``)."""
    seconds = max(1, int(-(-retry_after // 1)))
    if api == "anthropic":
        reset = datetime.fromtimestamp(now + seconds, tz=timezone.utc)
        stamp = reset.strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": stamp,
        }
    if api == "openai":
        return {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": f"{seconds}s",
        }
    return {}


def mcp_error_body(request_id: Any, message: str) -> dict[str, Any]:
    """A JSON-RPC internal error answering an MCP request."""
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32603, "message": message}}


def malformed(body: bytes) -> bytes:
    """``body`` cut in the middle: not JSON any more (never empty)."""
    return body[: max(1, len(body) // 2)] if len(body) > 1 else b"{"


_USAGE_NUMBER = re.compile(
    rb'("(?:prompt_tokens|completion_tokens|total_tokens|input_tokens|output_tokens|'
    rb'cache_read_input_tokens|cache_creation_input_tokens)"\s*:\s*)(\d+)'
)


def inflate_usage(data: bytes, factor: float) -> bytes:
    """Every token count in ``data`` (a JSON body or SSE events) multiplied by ``factor``."""
    return _USAGE_NUMBER.sub(
        lambda m: m.group(1) + str(int(int(m.group(2)) * factor)).encode(), data
    )


def drift(body: bytes, path: str, rename_to: str) -> bytes:
    """The JSON ``body`` with the field at dotted ``path`` renamed (or dropped when
    ``rename_to`` is empty); a body that is not JSON or lacks the field is returned as is.
    Numeric parts index lists (``content.0.text``)."""
    try:
        data = read_json(body, max_depth=PROXY_MAX_DEPTH)
    except ValueError:
        return body
    parts = path.split(".")
    node: Any = data
    for part in parts[:-1]:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return body
    last = parts[-1]
    if not isinstance(node, dict) or last not in node:
        return body
    value = node.pop(last)
    if rename_to:
        node[rename_to] = value
    return json.dumps(data, separators=(",", ":")).encode()
