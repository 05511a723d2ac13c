"""What the proxy needs to know of each provider API: the request plan and the usage.

A request is read once into a :class:`CallPlan` (operation, model, stream, worst-case
tokens, the body to send). A JSON response gives :class:`TokenUsage` through
:func:`usage_from_json`; streams go through :mod:`agent_sre_daemon.proxy.providers.sse`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent_sre.cost.usage import TokenUsage, estimate_tokens

if TYPE_CHECKING:
    from agent_sre.config import ProxyRoute

# (path suffix, gen_ai.operation.name) per API; first match wins.
_OPENAI_OPERATIONS = (
    ("/chat/completions", "chat"),
    ("/completions", "text_completion"),
    ("/embeddings", "embeddings"),
    ("/responses", "chat"),
)
_ANTHROPIC_OPERATIONS = (("/messages", "chat"),)
STREAM_OPTIONS_PATHS = ("/chat/completions", "/completions")
"""OpenAI endpoints that take ``stream_options.include_usage``."""


@dataclass
class CallPlan:
    """One proxied call as the proxy understood its request."""

    api: str
    provider: str
    operation: str | None
    """``gen_ai.operation.name``; None for calls the proxy does not price (e.g. list models)."""
    model: str = ""
    stream: bool = False
    max_output_tokens: int | None = None
    input_tokens_estimate: int = 0
    body: bytes = b""
    strip_usage: bool = False
    """We asked for ``include_usage``; take the usage chunk out before the client sees it."""
    is_responses_api: bool = False
    tool_name: str | None = None
    mcp_request_id: Any = None

    @property
    def priced(self) -> bool:
        return self.operation is not None and self.provider != "" and bool(self.model)


def plan_call(route: ProxyRoute, method: str, path: str, body: bytes) -> CallPlan:
    """Reads the request (``path`` is relative to the route prefix)."""
    if route.api in ("tool", "mcp"):
        return _plan_tool(route, body)
    if route.api not in ("openai", "anthropic") or method != "POST":
        return CallPlan(route.api, "", None, body=body)
    operations = _OPENAI_OPERATIONS if route.api == "openai" else _ANTHROPIC_OPERATIONS
    operation = next((op for suffix, op in operations if path.endswith(suffix)), None)
    plan = CallPlan(route.api, route.api, operation, body=body)
    if operation is None:
        return plan
    data = _json_object(body)
    if data is None:
        return plan
    plan.model = str(data.get("model") or "")
    plan.stream = data.get("stream") is True
    plan.input_tokens_estimate = estimate_tokens(len(body))
    plan.is_responses_api = path.endswith("/responses")
    for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = data.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            plan.max_output_tokens = value
            break
    if operation == "embeddings":
        plan.max_output_tokens = 0
    if (
        route.api == "openai"
        and plan.stream
        and path.endswith(STREAM_OPTIONS_PATHS)
        and not _asks_for_usage(data)
    ):
        options = data.get("stream_options")
        data["stream_options"] = {
            **(options if isinstance(options, dict) else {}),
            "include_usage": True,
        }
        plan.body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        plan.strip_usage = True
    return plan


def _asks_for_usage(data: dict[str, Any]) -> bool:
    options = data.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _plan_tool(route: ProxyRoute, body: bytes) -> CallPlan:
    plan = CallPlan(route.api, "", "execute_tool", body=body, tool_name=route.tool or route.name)
    if route.api == "mcp":
        data = _json_object(body)
        if data is not None and data.get("method") == "tools/call":
            params = data.get("params")
            if isinstance(params, dict) and isinstance(params.get("name"), str):
                plan.tool_name = params["name"]
            plan.mcp_request_id = data.get("id")
        else:
            plan.operation = None  # initialize, tools/list, notifications: not a tool call
    return plan


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body) if body else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


@dataclass
class ResponseFacts:
    """What a response told about the call."""

    usage: TokenUsage | None = None
    response_model: str = ""
    output_chars: int = 0
    usage_final: bool = False
    """The usage block covers the whole response (a stream that ran to its usage event)."""
    tool_error: str | None = None
    """For MCP: the JSON-RPC error message, or ``isError`` as ``tool_error``."""
    response_id: str = ""
    """The provider's id of the response (``gen_ai.response.id``; links the agent's span)."""


def usage_from_openai(raw: Any) -> TokenUsage | None:
    """OpenAI usage (chat/completions/embeddings and the Responses API)."""
    if not isinstance(raw, dict):
        return None
    if "input_tokens" in raw:  # Responses API
        details = raw.get("input_tokens_details") or {}
        return TokenUsage(
            input_tokens=_int(raw.get("input_tokens")),
            output_tokens=_int(raw.get("output_tokens")),
            cache_read_tokens=_int(details.get("cached_tokens")),
        )
    details = raw.get("prompt_tokens_details") or {}
    return TokenUsage(
        input_tokens=_int(raw.get("prompt_tokens")),
        output_tokens=_int(raw.get("completion_tokens")),
        cache_read_tokens=_int(details.get("cached_tokens") if isinstance(details, dict) else 0),
    )


def usage_from_anthropic(raw: Any, previous: TokenUsage | None = None) -> TokenUsage | None:
    """Anthropic usage; its ``input_tokens`` exclude cache reads and writes, ours include them.

    A ``message_delta`` carries cumulative output tokens and (lately) may repeat input
    figures; fields it leaves out keep their ``message_start`` values.
    """
    if not isinstance(raw, dict):
        return previous
    base = previous or TokenUsage()
    cache_read = _int(raw.get("cache_read_input_tokens"), base.cache_read_tokens)
    cache_write = _int(raw.get("cache_creation_input_tokens"), base.cache_write_tokens)
    if "input_tokens" in raw:
        input_tokens = _int(raw.get("input_tokens")) + cache_read + cache_write
    else:
        input_tokens = base.input_tokens
    return TokenUsage(
        input_tokens=input_tokens,
        output_tokens=_int(raw.get("output_tokens"), base.output_tokens),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def facts_from_json(plan: CallPlan, body: bytes) -> ResponseFacts:
    """Usage, model and output size of a complete JSON response."""
    data = _json_object(body)
    facts = ResponseFacts()
    if data is None:
        facts.output_chars = len(body)
        return facts
    if plan.api == "mcp":
        facts.tool_error = mcp_error(data)
        return facts
    facts.response_model = str(data.get("model") or "")
    facts.response_id = response_id_of(data)
    if plan.api == "anthropic":
        facts.usage = usage_from_anthropic(data.get("usage"))
        facts.usage_final = facts.usage is not None
        facts.output_chars = sum(
            len(str(block.get("text") or block.get("input") or ""))
            for block in data.get("content") or []
            if isinstance(block, dict)
        )
        return facts
    facts.usage = usage_from_openai(data.get("usage"))
    facts.usage_final = facts.usage is not None
    facts.output_chars = _openai_output_chars(data)
    return facts


def response_id_of(data: dict[str, Any]) -> str:
    """The ``id`` of a response object (OpenAI chat/completions/responses, Anthropic)."""
    value = data.get("id")
    return value if isinstance(value, str) else ""


def _openai_output_chars(data: dict[str, Any]) -> int:
    total = 0
    for choice in data.get("choices") or []:
        if isinstance(choice, dict):
            message = choice.get("message") or {}
            total += len(str(message.get("content") or choice.get("text") or ""))
            total += len(json.dumps(message.get("tool_calls"))) if message.get("tool_calls") else 0
    for item in data.get("output") or []:
        if isinstance(item, dict):
            for part in item.get("content") or []:
                if isinstance(part, dict):
                    total += len(str(part.get("text") or ""))
    return total


def mcp_error(message: dict[str, Any]) -> str | None:
    """The failure a JSON-RPC response reports: ``error.message``, or ``isError``."""
    error = message.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or "json-rpc error")
    result = message.get("result")
    if isinstance(result, dict) and result.get("isError") is True:
        return "tool_error"
    return None
