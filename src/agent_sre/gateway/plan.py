"""One proxied call as the proxy understood its request, and what its response told."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent_sre.jsonbody import PROXY_MAX_DEPTH, JsonTooDeepError, read_json

if TYPE_CHECKING:
    from agent_sre.cost.usage import TokenUsage


@dataclass
class CallPlan:
    """One proxied call as the proxy understood its request."""

    api: str
    """The route's API shape (a key of ``PROVIDERS``)."""
    provider: str
    """``gen_ai.provider.name`` (empty for tools and pass-through)."""
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
    """The JSON-RPC request's ``id`` (MCP and A2A)."""
    choices: int = 1
    """Completions asked for at once (OpenAI ``n``, ``best_of``): each may reach the cap."""
    priced_as: str = ""
    """The model this call is priced at when its own has no price
    (``budgets.unpriced_models: {price_as: ...}``); empty otherwise."""
    price_provider: str = ""
    """The provider id the call is priced under (genai-prices', or ``route:NAME`` for a
    route with prices of its own); empty: ``provider``."""
    refusal: str = ""
    """Why the proxy refuses the request's body itself (JSON nested deeper than the reader
    takes: no upstream parser should be handed it); empty for every ordinary call."""
    # A2A (providers/a2a.py)
    delegation: bool = False
    """A hand-off to another agent (an A2A message sent or streamed): a DELEGATION span."""
    callee: str = ""
    """The agent an A2A route leads to (the route's ``callee``, else its name)."""
    rpc_method: str = ""
    """The JSON-RPC method of an A2A call."""
    task_id: str = ""
    """The A2A task a call names (a follow-up's task, or the task a message continues)."""
    agent_card: bool = False
    """A GET of an A2A agent card."""
    reserve_usd: float = 0.0
    """What a hand-off holds of the caller's budgets while it runs (the route's
    ``delegation_reserve_usd``)."""

    @property
    def llm_call(self) -> bool:
        """An LLM operation of an LLM API, whether or not its model is known or priced."""
        return self.operation is not None and self.provider != ""

    @property
    def pricing(self) -> str:
        """The provider id to price the call under."""
        return self.price_provider or self.provider

    @property
    def priced(self) -> bool:
        return self.llm_call and bool(self.model or self.priced_as)

    @property
    def worst_case_tokens(self) -> int:
        """Input estimate plus the requested output cap (what rate limits count)."""
        return self.input_tokens_estimate + (self.max_output_tokens or 0) * self.choices


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
    usage_problem: str | None = None
    """Why the usage the upstream reported cannot be trusted (negative, not a whole number,
    beyond what the model can take); the call then settles at its reservation."""
    task_id: str = ""
    """A2A: the task the answer reports."""
    task_state: str = ""
    """A2A: the last state of that task the answer reported."""
    rpc_error_code: int | None = None
    """A2A: the JSON-RPC error code of an error answer."""


def response_id_of(data: Any) -> str:
    """The ``id`` of a response object (OpenAI chat/completions/responses, Anthropic)."""
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else ""


def too_deep(body: bytes) -> str:
    """Why ``body`` is refused for its nesting (``""`` when it is not JSON nested deeper
    than :data:`~agent_sre.jsonbody.PROXY_MAX_DEPTH`). A body with fewer brackets than the
    limit costs two counts, nothing more."""
    if body.count(b"{") + body.count(b"[") <= PROXY_MAX_DEPTH:
        return ""
    try:
        read_json(body, max_depth=PROXY_MAX_DEPTH, what="request body")
    except JsonTooDeepError as exc:
        return str(exc)
    except ValueError:
        return ""
    return ""


class UsageError(ValueError):
    """A usage figure the proxy will not book (the message says which and why)."""


def json_object(body: bytes) -> dict[str, Any] | None:
    """``body`` as a JSON object, or None (not JSON, not an object, or nested too deeply
    for the parser)."""
    try:
        data = read_json(body, max_depth=None) if body else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


DECISIVE_KEYS = frozenset(
    {
        "model",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "max_output_tokens",
        "n",
        "best_of",
        "generationConfig",
        "maxOutputTokens",
        "candidateCount",
        "inferenceConfig",
        "maxTokens",
    }
)
"""Request keys that decide what a call is or may cost."""


class _AmbiguousError(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen and key in DECISIVE_KEYS:
                raise _AmbiguousError(key)
            seen.add(key)
    return data


def request_object(body: bytes) -> dict[str, Any] | None:
    """A request body as a JSON object, or None, also when it names a deciding key twice
    (``{"model": "a", "model": "b"}``): parsers disagree on which one counts, so the
    proxy cannot know which model the upstream will run."""
    try:
        # no depth walk: plan_call ran too_deep first, and planning reads the top levels
        data = read_json(body, max_depth=None, object_pairs_hook=_pairs) if body else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def int_field(value: Any, default: int = 0, name: str = "usage") -> int:
    """A token count of a usage block: ``default`` when absent (missing or null); a whole
    non-negative number otherwise, or :class:`UsageError`."""
    if value is None:
        return default
    if isinstance(value, bool):
        raise UsageError(f"{name} is a boolean")
    if isinstance(value, float):
        if not value.is_integer():  # also NaN and infinities
            raise UsageError(f"{name} is not a whole number ({value!r})")
        value = int(value)
    if not isinstance(value, int):
        raise UsageError(f"{name} is not a number ({type(value).__name__})")
    if value < 0:
        raise UsageError(f"{name} is negative")
    return value
