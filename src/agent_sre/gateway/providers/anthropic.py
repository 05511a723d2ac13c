"""``api: anthropic``: the Messages API (JSON and its server-sent events)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent_sre.cost.usage import TokenUsage
from agent_sre.gateway.plan import (
    CallPlan,
    ResponseFacts,
    int_field,
    request_object,
    response_id_of,
)
from agent_sre.gateway.providers.base import (
    SSE,
    body_with_model,
    reset_stamp,
    whole_seconds,
)
from agent_sre.gateway.providers.openai import read_model_request

if TYPE_CHECKING:
    from agent_sre.config import ProxyRoute


ERRORS: dict[int, tuple[str, str]] = {
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


class Anthropic:
    api = "anthropic"
    llm = True
    price_id = "anthropic"
    signing = ""
    stream_type = SSE
    error_types = ERRORS
    default_error = ("api_error", "Internal server error")
    credential_headers: tuple[str, ...] = ("x-api-key", "Authorization")
    credential_query = ""

    def plan(self, route: ProxyRoute, method: str, path: str, body: bytes) -> CallPlan:
        if method != "POST":
            return CallPlan(self.api, "", None, body=body)
        operation = "chat" if path.rstrip("/").endswith("/messages") else None
        plan = CallPlan(self.api, self.api, operation, body=body)
        data = request_object(body) if operation is not None else None
        if data is not None:
            read_model_request(plan, data, body)
        return plan

    def facts_from_json(self, plan: CallPlan, data: dict[str, Any]) -> ResponseFacts:
        facts = ResponseFacts(
            response_model=str(data.get("model") or ""), response_id=response_id_of(data)
        )
        facts.usage = usage_from_anthropic(data.get("usage"))
        facts.usage_final = facts.usage is not None
        content = data.get("content")
        facts.output_chars = sum(
            len(str(block.get("text") or block.get("input") or ""))
            for block in (content if isinstance(content, list) else [])
            if isinstance(block, dict)
        )
        return facts

    # hot path: per server-sent event of a streamed call
    def on_event(
        self, plan: CallPlan, facts: ResponseFacts, name: bytes, data: dict[str, Any], event: bytes
    ) -> bytes:
        kind = data.get("type")
        if kind == "content_block_delta":
            delta = data.get("delta")
            delta = delta if isinstance(delta, dict) else {}
            text = delta.get("text") or delta.get("partial_json") or delta.get("thinking")
            if isinstance(text, str):
                facts.output_chars += len(text)
        elif kind == "message_start":
            message = data.get("message")
            message = message if isinstance(message, dict) else {}
            facts.response_model = str(message.get("model") or "")
            facts.response_id = response_id_of(message)
            facts.usage = usage_from_anthropic(message.get("usage"))
        elif kind == "message_delta":
            facts.usage = usage_from_anthropic(data.get("usage"), facts.usage)
            facts.usage_final = facts.usage is not None
        return event

    def error_body(self, kind: str, message: str, status: int = 0) -> dict[str, object]:
        # its error.type is our kind, so clients switch on one field for both providers
        return {"type": "error", "error": {"type": kind, "message": message}}

    def error_headers(self, kind: str, status: int) -> dict[str, str]:
        return {}

    def rate_limit_headers(self, retry_after: float, now: float) -> dict[str, str]:
        return {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": reset_stamp(now, whole_seconds(retry_after)),
        }

    def key_header(self, key: str) -> tuple[str, str]:
        return "x-api-key", key

    def with_model(self, plan: CallPlan, path: str, model: str) -> tuple[bytes, str] | None:
        body = body_with_model(plan.body, model)
        return None if body is None else (body, path)


def usage_from_anthropic(raw: Any, previous: TokenUsage | None = None) -> TokenUsage | None:
    """Anthropic usage; its ``input_tokens`` exclude cache reads and writes, ours include them.

    A ``message_delta`` carries cumulative output tokens and (lately) may repeat input
    figures; fields it leaves out keep their ``message_start`` values.
    """
    if not isinstance(raw, dict):
        return previous
    base = previous or TokenUsage()
    cache_read = int_field(
        raw.get("cache_read_input_tokens"), base.cache_read_tokens, "cache_read_input_tokens"
    )
    cache_write = int_field(
        raw.get("cache_creation_input_tokens"),
        base.cache_write_tokens,
        "cache_creation_input_tokens",
    )
    if raw.get("input_tokens") is not None:
        input_tokens = (
            int_field(raw["input_tokens"], name="input_tokens") + cache_read + cache_write
        )
    else:
        input_tokens = base.input_tokens
    return TokenUsage(
        input_tokens=input_tokens,
        output_tokens=int_field(raw.get("output_tokens"), base.output_tokens, "output_tokens"),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


PROVIDER = Anthropic()
