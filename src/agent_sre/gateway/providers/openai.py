"""``api: openai``: chat completions, completions, embeddings and the Responses API.

Streams: when the client did not ask for ``stream_options.include_usage`` the proxy asks for
it and takes out what that adds (the usage-only final chunk and each chunk's
``"usage":null``), so the client receives the bytes it would have received directly.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from agent_sre.cost.usage import TokenUsage, estimate_tokens
from agent_sre.gateway.cost import MAX_TOKENS_PER_CALL
from agent_sre.gateway.plan import (
    CallPlan,
    ResponseFacts,
    int_field,
    request_object,
    response_id_of,
)
from agent_sre.gateway.providers.base import SSE, PlainHttp, body_with_model, whole_seconds

if TYPE_CHECKING:
    from agent_sre.config import ProxyRoute

# (path suffix, gen_ai.operation.name); first match wins.
OPERATIONS = (
    ("/chat/completions", "chat"),
    ("/completions", "text_completion"),
    ("/embeddings", "embeddings"),
    ("/responses", "chat"),
)
STREAM_OPTIONS_PATHS = ("/chat/completions", "/completions")
"""Endpoints that take ``stream_options.include_usage``."""
_USAGE_NULL = (b',"usage":null', b', "usage": null')
_MAX_TOKENS_KEYS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
_CHOICES_KEYS = ("n", "best_of")
MAX_CHOICES = 128
"""OpenAI takes at most 128 choices; a larger ``n`` is reserved as 128 (upstream refuses it)."""


ERRORS: dict[int, tuple[str, str]] = {
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


class OpenAI:
    api = "openai"
    provider = "openai"
    """``gen_ai.provider.name`` of its calls."""
    llm = True
    price_id = "openai"
    signing = ""
    stream_type = SSE
    error_types = ERRORS
    default_error = PlainHttp.default_error
    credential_headers: tuple[str, ...] = ("Authorization",)
    credential_query = ""

    def plan(self, route: ProxyRoute, method: str, path: str, body: bytes) -> CallPlan:
        if method != "POST":
            return CallPlan(self.api, "", None, body=body)
        path = path.rstrip("/")
        operation = next((op for suffix, op in OPERATIONS if path.endswith(suffix)), None)
        plan = CallPlan(self.api, self.provider, operation, body=body)
        if operation is None:
            return plan
        data = request_object(body)
        if data is None:
            return plan
        read_model_request(plan, data, body)
        self.name_model(route, plan)
        plan.is_responses_api = path.endswith("/responses")
        if operation == "embeddings":
            plan.max_output_tokens = 0
        if plan.stream and path.endswith(STREAM_OPTIONS_PATHS) and not _asks_for_usage(data):
            options = data.get("stream_options")
            data["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
            plan.body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
            plan.strip_usage = True
        return plan

    def facts_from_json(self, plan: CallPlan, data: dict[str, Any]) -> ResponseFacts:
        facts = ResponseFacts(
            response_model=str(data.get("model") or ""), response_id=response_id_of(data)
        )
        facts.usage = usage_from_openai(data.get("usage"))
        facts.usage_final = facts.usage is not None
        facts.output_chars = _output_chars(data)
        return facts

    # hot path: per server-sent event of a streamed call
    def on_event(
        self, plan: CallPlan, facts: ResponseFacts, name: bytes, data: dict[str, Any], event: bytes
    ) -> bytes:
        if plan.is_responses_api:
            _responses_event(facts, name, data)
            return event
        if _chunk(facts, data) and plan.strip_usage:
            return b""
        if plan.strip_usage:
            for needle in _USAGE_NULL:
                event = event.replace(needle, b"")
        return event

    def name_model(self, route: ProxyRoute, plan: CallPlan) -> None:
        """Where a shape on this one names the model otherwise (Azure's deployments)."""

    def error_body(self, kind: str, message: str, status: int = 0) -> dict[str, object]:
        return {"error": {"message": message, "type": kind, "param": None, "code": kind}}

    def error_headers(self, kind: str, status: int) -> dict[str, str]:
        return {}

    def rate_limit_headers(self, retry_after: float, now: float) -> dict[str, str]:
        return {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": f"{whole_seconds(retry_after)}s",
        }

    def key_header(self, key: str) -> tuple[str, str]:
        return "Authorization", f"Bearer {key}"

    def with_model(self, plan: CallPlan, path: str, model: str) -> tuple[bytes, str] | None:
        body = body_with_model(plan.body, model)
        return None if body is None else (body, path)


def read_model_request(plan: CallPlan, data: dict[str, Any], body: bytes) -> None:
    """Model, stream flag, output cap and input estimate of an LLM request body."""
    plan.model = str(data.get("model") or "")
    plan.stream = data.get("stream") is True
    plan.input_tokens_estimate = estimate_tokens(len(body))
    for key in _MAX_TOKENS_KEYS:
        value = data.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            plan.max_output_tokens = min(value, MAX_TOKENS_PER_CALL)
            break
    for key in _CHOICES_KEYS:  # best_of generates that many server-side, billed as output
        value = data.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 1:
            plan.choices = max(plan.choices, min(value, MAX_CHOICES))


def _asks_for_usage(data: dict[str, Any]) -> bool:
    options = data.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def usage_from_openai(raw: Any) -> TokenUsage | None:
    """OpenAI usage (chat/completions/embeddings and the Responses API)."""
    if not isinstance(raw, dict):
        return None
    if "input_tokens" in raw:  # Responses API
        details = raw.get("input_tokens_details")
        return TokenUsage(
            input_tokens=int_field(raw.get("input_tokens"), name="input_tokens"),
            output_tokens=int_field(raw.get("output_tokens"), name="output_tokens"),
            cache_read_tokens=int_field(
                details.get("cached_tokens") if isinstance(details, dict) else None,
                name="cached_tokens",
            ),
        )
    details = raw.get("prompt_tokens_details")
    return TokenUsage(
        input_tokens=int_field(raw.get("prompt_tokens"), name="prompt_tokens"),
        output_tokens=int_field(raw.get("completion_tokens"), name="completion_tokens"),
        cache_read_tokens=int_field(
            details.get("cached_tokens") if isinstance(details, dict) else None,
            name="cached_tokens",
        ),
    )


def _output_chars(data: dict[str, Any]) -> int:
    total = 0
    for choice in _list(data.get("choices")):
        if isinstance(choice, dict):
            message = choice.get("message")
            message = message if isinstance(message, dict) else {}
            total += len(str(message.get("content") or choice.get("text") or ""))
            total += len(json.dumps(message.get("tool_calls"))) if message.get("tool_calls") else 0
    for item in _list(data.get("output")):
        if isinstance(item, dict):
            for part in _list(item.get("content")):
                if isinstance(part, dict):
                    total += len(str(part.get("text") or ""))
    return total


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _chunk(facts: ResponseFacts, data: dict[str, Any]) -> bool:
    """Reads a chat/completions chunk; True when it is the usage-only final chunk."""
    if not facts.response_model and data.get("model"):
        facts.response_model = str(data["model"])
    if not facts.response_id:
        facts.response_id = response_id_of(data)
    choices = data.get("choices")
    usage = data.get("usage")
    if usage:
        facts.usage = usage_from_openai(usage)
        facts.usage_final = True
    if choices:
        for choice in _list(choices):
            if isinstance(choice, dict):
                delta = choice.get("delta") or {}
                text = delta.get("content") if isinstance(delta, dict) else None
                text = text if text is not None else choice.get("text")
                if isinstance(text, str):
                    facts.output_chars += len(text)
                tools = delta.get("tool_calls") if isinstance(delta, dict) else None
                if tools:
                    facts.output_chars += len(json.dumps(tools))
        return False
    return bool(usage) and choices == []


def _responses_event(facts: ResponseFacts, name: bytes, data: dict[str, Any]) -> None:
    kind = data.get("type") or name.decode(errors="replace")
    if kind == "response.output_text.delta" or str(kind).endswith(".delta"):
        delta = data.get("delta")
        if isinstance(delta, str):
            facts.output_chars += len(delta)
        return
    response = data.get("response")
    if isinstance(response, dict):
        if not facts.response_id:
            facts.response_id = response_id_of(response)
        if response.get("model"):
            facts.response_model = str(response["model"])
        if response.get("usage"):
            facts.usage = usage_from_openai(response["usage"])
            facts.usage_final = True


PROVIDER = OpenAI()
