"""``api: gemini``: Google's Gemini API (``generateContent``, ``streamGenerateContent`` with
``alt=sse``, ``embedContent``, ``batchEmbedContents``, ``countTokens``).

The model is in the path (``/v1beta/models/{model}:{method}``, also Vertex-style paths that
end the same way); usage comes from ``usageMetadata``: the prompt (cached tokens and tool-use
prompts included) is input, candidates and thoughts are output. Each streamed chunk repeats
the figures so far; the chunk with a ``finishReason`` closes them. ``countTokens`` is free
and not priced. Errors take Google's shape: ``{"error": {"code", "message", "status"}}``
with our kind as the ``reason`` of an ``ErrorInfo`` detail.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from agent_sre.cost.usage import TokenUsage, estimate_tokens
from agent_sre.gateway.cost import MAX_TOKENS_PER_CALL
from agent_sre.gateway.plan import CallPlan, ResponseFacts, int_field, request_object
from agent_sre.gateway.providers.base import SSE
from agent_sre.gateway.providers.openai import MAX_CHOICES

if TYPE_CHECKING:
    from agent_sre.config import ProxyRoute

METHODS: dict[str, tuple[str | None, bool]] = {
    "generateContent": ("generate_content", False),
    "streamGenerateContent": ("generate_content", True),
    "embedContent": ("embeddings", False),
    "batchEmbedContents": ("embeddings", False),
    "countTokens": (None, False),
}
"""Method -> (``gen_ai.operation.name``, streamed); None: not priced. Another method of a
model is priced as ``generate_content`` (its usage read if it reports one, else estimated):
a method this list does not know is never a way around a budget."""

STATUS_NAMES: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "API key not valid. Please pass a valid API key."),
    403: ("PERMISSION_DENIED", "The caller does not have permission."),
    404: ("NOT_FOUND", "Requested entity was not found."),
    409: ("ABORTED", "The operation was aborted."),
    413: ("INVALID_ARGUMENT", "Request payload size exceeds the limit."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    499: ("CANCELLED", "The operation was cancelled."),
    500: ("INTERNAL", "An internal error has occurred. Please retry."),
    501: ("NOT_IMPLEMENTED", "Method not implemented."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}
"""Google's canonical status (and its usual words) per HTTP status."""
ERROR_DOMAIN = "agent-sre"


class Gemini:
    api = "gemini"
    provider = "gcp.gemini"
    """``gen_ai.provider.name`` (OpenTelemetry's name for the Gemini API)."""
    llm = True
    price_id = "google"
    signing = ""
    stream_type = SSE
    error_types = STATUS_NAMES
    default_error = STATUS_NAMES[500]
    credential_headers: tuple[str, ...] = ("x-goog-api-key", "Authorization")
    credential_query = "key"

    def plan(self, route: ProxyRoute, method: str, path: str, body: bytes) -> CallPlan:
        if method != "POST":
            return CallPlan(self.api, "", None, body=body)
        model, verb = model_and_method(path)
        # a method of a model not listed (a new one) may generate: priced, never free
        operation, stream = METHODS.get(
            verb, ("generate_content", False) if model and verb else (None, False)
        )
        plan = CallPlan(self.api, self.provider, operation, body=body, model=model)
        if operation is None:
            return plan
        plan.stream = stream
        plan.input_tokens_estimate = estimate_tokens(len(body))
        if operation == "embeddings":
            plan.max_output_tokens = 0
            return plan
        data = request_object(body)
        config = data.get("generationConfig") if data is not None else None
        if isinstance(config, dict):
            _read_config(plan, config)
        return plan

    def facts_from_json(self, plan: CallPlan, data: dict[str, Any]) -> ResponseFacts:
        facts = ResponseFacts()
        _read_chunk(facts, data)
        facts.usage_final = facts.usage is not None
        return facts

    # hot path: per server-sent event of a streamed call
    def on_event(
        self, plan: CallPlan, facts: ResponseFacts, name: bytes, data: dict[str, Any], event: bytes
    ) -> bytes:
        if _read_chunk(facts, data) and facts.usage is not None:
            facts.usage_final = True
        return event

    def error_body(self, kind: str, message: str, status: int = 0) -> dict[str, object]:
        status = status or 500
        name = STATUS_NAMES.get(status, STATUS_NAMES[500 if status >= 500 else 400])[0]
        detail = {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": kind,
            "domain": ERROR_DOMAIN,
        }
        return {"error": {"code": status, "message": message, "status": name, "details": [detail]}}

    def error_headers(self, kind: str, status: int) -> dict[str, str]:
        return {}

    def rate_limit_headers(self, retry_after: float, now: float) -> dict[str, str]:
        return {}  # Google says when to retry in the body (RetryInfo), not in headers

    def key_header(self, key: str) -> tuple[str, str]:
        return "x-goog-api-key", key

    def with_model(self, plan: CallPlan, path: str, model: str) -> tuple[bytes, str] | None:
        head, _, last = path.rpartition("/")
        if ":" not in last or not plan.model:
            return None
        return plan.body, f"{head}/{quote(model, safe='-._~@')}:{last.rpartition(':')[2]}"


def model_and_method(path: str) -> tuple[str, str]:
    """``(model, method)`` of ``.../models/{model}:{method}`` (either may be empty)."""
    last = path.rstrip("/").rpartition("/")[2]
    model, colon, verb = last.rpartition(":")
    if not colon:
        return "", ""
    return unquote(model), verb


def _read_config(plan: CallPlan, config: dict[str, Any]) -> None:
    value = config.get("maxOutputTokens")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        plan.max_output_tokens = min(value, MAX_TOKENS_PER_CALL)
    count = config.get("candidateCount")
    if isinstance(count, int) and not isinstance(count, bool) and count > 1:
        plan.choices = min(count, MAX_CHOICES)


def usage_from_gemini(raw: Any) -> TokenUsage | None:
    """``usageMetadata``: prompt (cached and tool-use prompt tokens included) as input,
    candidates and thoughts as output."""
    if not isinstance(raw, dict):
        return None
    prompt = int_field(raw.get("promptTokenCount"), name="promptTokenCount")
    tool_prompt = int_field(raw.get("toolUsePromptTokenCount"), name="toolUsePromptTokenCount")
    candidates = int_field(raw.get("candidatesTokenCount"), name="candidatesTokenCount")
    thoughts = int_field(raw.get("thoughtsTokenCount"), name="thoughtsTokenCount")
    cached = int_field(raw.get("cachedContentTokenCount"), name="cachedContentTokenCount")
    return TokenUsage(
        input_tokens=prompt + tool_prompt,
        output_tokens=candidates + thoughts,
        cache_read_tokens=min(cached, prompt + tool_prompt),
    )


def _read_chunk(facts: ResponseFacts, data: dict[str, Any]) -> bool:
    """Reads a response (or one streamed chunk of it); True when it finishes a candidate."""
    if not facts.response_model and isinstance(data.get("modelVersion"), str):
        facts.response_model = data["modelVersion"]
    if not facts.response_id and isinstance(data.get("responseId"), str):
        facts.response_id = data["responseId"]
    usage = usage_from_gemini(data.get("usageMetadata"))
    if usage is not None:
        facts.usage = usage
    finished = False
    candidates = data.get("candidates")
    for candidate in candidates if isinstance(candidates, list) else ():
        if not isinstance(candidate, dict):
            continue
        finished = finished or bool(candidate.get("finishReason"))
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else ():
            if isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    facts.output_chars += len(text)
                elif part.get("functionCall") is not None:
                    facts.output_chars += len(json.dumps(part["functionCall"]))
    return finished


PROVIDER = Gemini()
