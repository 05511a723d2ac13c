"""``api: bedrock``: Amazon Bedrock's Converse and ConverseStream
(``POST /model/{modelId}/converse``, ``/model/{modelId}/converse-stream``).

The model is in the path; usage is Converse's ``usage`` (``inputTokens`` leaves out cache
reads and writes, ours includes them), in the JSON answer or in the stream's ``metadata``
event (AWS event-stream framing: :mod:`agent_sre.gateway.eventstream`). ``InvokeModel`` (and
its stream) is an LLM call of the path's model too: priced from an Anthropic-shaped
``usage`` when its answer has one, else estimated from what passed. Errors carry the AWS
error code in ``x-amzn-ErrorType`` (what the SDKs read) and ``{"message": ...}``.

Signing (SigV4) is the proxy's business, not this module's: see ``aws_signing``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from agent_sre.cost.usage import TokenUsage, estimate_tokens
from agent_sre.gateway.cost import MAX_TOKENS_PER_CALL
from agent_sre.gateway.eventstream import CONTENT_TYPE
from agent_sre.gateway.plan import CallPlan, ResponseFacts, int_field, request_object
from agent_sre.gateway.providers.anthropic import usage_from_anthropic

if TYPE_CHECKING:
    from agent_sre.config import ProxyRoute

ACTIONS: dict[str, bool] = {
    "converse": False,
    "converse-stream": True,
    "invoke": False,
    "invoke-with-response-stream": True,
}
"""The model's actions the proxy prices -> streamed."""

ERRORS: dict[int, tuple[str, str]] = {
    400: ("ValidationException", "The input fails to satisfy the constraints."),
    401: ("UnrecognizedClientException", "The security token included in the request is invalid."),
    403: ("AccessDeniedException", "You don't have access to the model with the specified id."),
    404: ("ResourceNotFoundException", "The specified resource could not be found."),
    408: ("ModelTimeoutException", "The request took too long to process."),
    424: ("ModelErrorException", "The model failed to process the request."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "An internal server error occurred. Retry your request."),
    503: ("ServiceUnavailableException", "The service isn't currently available."),
    504: ("ModelTimeoutException", "The request took too long to process."),
}


class Bedrock:
    api = "bedrock"
    provider = "aws.bedrock"
    llm = True
    price_id = "aws"
    signing = "aws_sigv4"
    stream_type = CONTENT_TYPE
    error_types = ERRORS
    default_error = ERRORS[500]
    credential_headers: tuple[str, ...] = ("Authorization",)
    credential_query = ""

    def plan(self, route: ProxyRoute, method: str, path: str, body: bytes) -> CallPlan:
        if method != "POST":
            return CallPlan(self.api, "", None, body=body)
        model, action = model_and_action(path)
        if action not in ACTIONS or not model:
            return CallPlan(self.api, self.provider, None, body=body)
        plan = CallPlan(self.api, self.provider, "chat", body=body, model=model)
        plan.stream = ACTIONS[action]
        plan.input_tokens_estimate = estimate_tokens(len(body))
        data = request_object(body)
        if data is None:
            return plan
        config = data.get("inferenceConfig")
        cap = config.get("maxTokens") if isinstance(config, dict) else data.get("max_tokens")
        if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0:
            plan.max_output_tokens = min(cap, MAX_TOKENS_PER_CALL)
        return plan

    def facts_from_json(self, plan: CallPlan, data: dict[str, Any]) -> ResponseFacts:
        facts = ResponseFacts()
        usage = data.get("usage")
        if isinstance(usage, dict) and "input_tokens" in usage:  # InvokeModel, Anthropic's
            facts.usage = usage_from_anthropic(usage)
        else:
            facts.usage = usage_from_bedrock(usage)
        facts.usage_final = facts.usage is not None
        output = data.get("output")
        message = output.get("message") if isinstance(output, dict) else None
        content = message.get("content") if isinstance(message, dict) else data.get("content")
        facts.output_chars = _content_chars(content)
        return facts

    # hot path: per event of a streamed call
    def on_event(
        self, plan: CallPlan, facts: ResponseFacts, name: bytes, data: dict[str, Any], event: bytes
    ) -> bytes:
        if name == b"contentBlockDelta":
            delta = data.get("delta")
            if isinstance(delta, dict):
                facts.output_chars += _delta_chars(delta)
        elif name == b"metadata":
            usage = usage_from_bedrock(data.get("usage"))
            if usage is not None:
                facts.usage = usage
                facts.usage_final = True
        return event

    def error_body(self, kind: str, message: str, status: int = 0) -> dict[str, object]:
        return {"message": message}

    def error_headers(self, kind: str, status: int) -> dict[str, str]:
        return {"x-amzn-ErrorType": kind}

    def rate_limit_headers(self, retry_after: float, now: float) -> dict[str, str]:
        return {}

    def key_header(self, key: str) -> tuple[str, str]:
        return "Authorization", f"Bearer {key}"  # a Bedrock API key

    def with_model(self, plan: CallPlan, path: str, model: str) -> tuple[bytes, str] | None:
        parts = path.split("/")
        if len(parts) < 4 or parts[1] != "model" or not plan.model:
            return None
        parts[2] = quote(model, safe="-._~:")
        return plan.body, "/".join(parts)


def model_and_action(path: str) -> tuple[str, str]:
    """``(modelId, action)`` of ``/model/{modelId}/{action}``."""
    parts = path.strip("/").split("/")
    if len(parts) != 3 or parts[0] != "model":
        return "", ""
    return unquote(parts[1]), parts[2]


def usage_from_bedrock(raw: Any) -> TokenUsage | None:
    """Converse ``usage``; its ``inputTokens`` leave out cache reads and writes."""
    if not isinstance(raw, dict):
        return None
    read = int_field(raw.get("cacheReadInputTokens"), name="cacheReadInputTokens")
    write = int_field(raw.get("cacheWriteInputTokens"), name="cacheWriteInputTokens")
    return TokenUsage(
        input_tokens=int_field(raw.get("inputTokens"), name="inputTokens") + read + write,
        output_tokens=int_field(raw.get("outputTokens"), name="outputTokens"),
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


def _content_chars(content: Any) -> int:
    total = 0
    for block in content if isinstance(content, list) else ():
        if isinstance(block, dict):
            text = block.get("text")
            if isinstance(text, str):
                total += len(text)
            elif block.get("toolUse") is not None:
                total += len(json.dumps(block["toolUse"]))
    return total


def _delta_chars(delta: dict[str, Any]) -> int:
    text = delta.get("text")
    if isinstance(text, str):
        return len(text)
    tool = delta.get("toolUse")
    if isinstance(tool, dict) and isinstance(tool.get("input"), str):
        return len(tool["input"])
    reasoning = delta.get("reasoningContent")
    if isinstance(reasoning, dict) and isinstance(reasoning.get("text"), str):
        return len(reasoning["text"])
    return 0


PROVIDER = Bedrock()
