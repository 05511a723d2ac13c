"""What each fault looks like on the wire, per API shape, so SDKs react as in production.

Error statuses and their ``error.type`` follow what the providers send (OpenAI:
``server_error``, ``rate_limit_exceeded``; Anthropic: ``api_error``, ``overloaded_error``
for 529, ``rate_limit_error``); rate limits carry the provider's own headers. Body rewrites
(malformed JSON, inflated usage, a renamed or dropped field) are functions of bytes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agent_sre.gateway.providers import PROVIDERS
from agent_sre.jsonbody import PROXY_MAX_DEPTH, read_json


def error_kind(api: str, status: int, message: str = "") -> tuple[str, str]:
    """The provider's ``error.type`` (or code) for ``status`` and its words (``message``
    wins), from the provider's own table (:mod:`agent_sre.gateway.providers`)."""
    provider = PROVIDERS.get(api, PROVIDERS["openai"])
    table = provider.error_types or PROVIDERS["openai"].error_types
    default = provider.default_error
    if status not in table and 400 <= status < 500:
        default = (table.get(400, ("invalid_request_error", ""))[0], "Request failed.")
    kind, words = table.get(status, default)
    return kind, message or words


def rate_limit_headers(api: str, retry_after: float, now: float) -> dict[str, str]:
    """The headers a provider's 429 carries (besides ``retry-after``)."""
    provider = PROVIDERS.get(api)
    return provider.rate_limit_headers(retry_after, now) if provider is not None else {}


def mcp_error_body(request_id: Any, message: str) -> dict[str, Any]:
    """A JSON-RPC internal error answering an MCP request."""
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32603, "message": message}}


def malformed(body: bytes) -> bytes:
    """``body`` cut in the middle: not JSON any more (never empty)."""
    return body[: max(1, len(body) // 2)] if len(body) > 1 else b"{"


_USAGE_NUMBER = re.compile(
    rb'("(?:prompt_tokens|completion_tokens|total_tokens|input_tokens|output_tokens|'
    rb"cache_read_input_tokens|cache_creation_input_tokens|"
    rb"promptTokenCount|candidatesTokenCount|thoughtsTokenCount|totalTokenCount|"
    rb"cachedContentTokenCount|toolUsePromptTokenCount|"
    rb'inputTokens|outputTokens|totalTokens|cacheReadInputTokens|cacheWriteInputTokens)"'
    rb"\s*:\s*)(\d+)"
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
