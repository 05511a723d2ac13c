"""What every API shape offers the proxy: the small protocol each provider module fills."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from agent_sre.config import ProxyRoute
    from agent_sre.gateway.plan import CallPlan, ResponseFacts


class Provider(Protocol):
    """All knowledge of one API shape.

    Attributes:
        api: the route's ``api`` value naming this shape.
        llm: an LLM API (its calls have a model, usage and a price; token faults apply).
        stream_type: the content type of its streams (server-sent events unless said).
        error_types: the provider's ``error.type`` (or code) and words per HTTP status, for
            the errors a chaos fault imitates.
        default_error: the same for a status the table lacks (5xx; 4xx take the 400 entry).
        credential_headers: the request headers its clients put a key in (taken out when
            the route injects one).
        credential_query: the query parameter its clients may put a key in ("" if none).
        price_id: the provider's id in genai-prices ("" when it has none: a local server,
            priced by the route's ``prices``, zero otherwise).
        signing: how its requests are signed when not by a key ("aws_sigv4"), or "".
    """

    api: str
    llm: bool
    price_id: str
    signing: str
    stream_type: str
    error_types: dict[int, tuple[str, str]]
    default_error: tuple[str, str]
    credential_headers: tuple[str, ...]
    credential_query: str

    def plan(self, route: ProxyRoute, method: str, path: str, body: bytes) -> CallPlan:
        """Reads a request (``path`` is relative to the route prefix)."""
        ...

    def facts_from_json(self, plan: CallPlan, data: dict[str, Any]) -> ResponseFacts:
        """Usage, model, output size (or a tool error) of a complete JSON response."""
        ...

    def on_event(
        self, plan: CallPlan, facts: ResponseFacts, name: bytes, data: dict[str, Any], event: bytes
    ) -> bytes:
        """Reads one streamed event into ``facts``; returns the bytes to pass on (the event
        itself, rewritten, or nothing). ``name`` is the SSE event name (or the event-stream
        ``:event-type``)."""
        ...

    def error_body(self, kind: str, message: str, status: int = 0) -> dict[str, object]:
        """The shape's error JSON carrying our machine-readable ``kind`` (``status``: the
        HTTP status it goes with, for shapes that repeat it in the body)."""
        ...

    def error_headers(self, kind: str, status: int) -> dict[str, str]:
        """Headers the shape's clients read an error's type from (most: none)."""
        ...

    def rate_limit_headers(self, retry_after: float, now: float) -> dict[str, str]:
        """The headers the provider's 429 carries (besides ``retry-after``)."""
        ...

    def key_header(self, key: str) -> tuple[str, str]:
        """The header (name, value) that carries an injected API key."""
        ...

    def with_model(self, plan: CallPlan, path: str, model: str) -> tuple[bytes, str] | None:
        """The request body and path (relative to the route) asking ``model`` instead (a
        rollout's candidate); None when the request names no model to replace."""
        ...


SSE = "text/event-stream"


class PlainHttp:
    """Defaults for every shape: no usage, the generic error body, a bearer key, SSE."""

    api = ""
    llm = False
    price_id = ""
    signing = ""
    stream_type = SSE
    error_types: dict[int, tuple[str, str]] = {}  # noqa: RUF012 - read only
    default_error = ("server_error", "The server had an error while processing your request.")
    credential_headers: tuple[str, ...] = ("Authorization",)
    credential_query = ""

    def facts_from_json(self, plan: CallPlan, data: dict[str, Any]) -> ResponseFacts:
        from agent_sre.gateway.plan import ResponseFacts

        return ResponseFacts()

    def on_event(
        self, plan: CallPlan, facts: ResponseFacts, name: bytes, data: dict[str, Any], event: bytes
    ) -> bytes:
        return event

    def error_body(self, kind: str, message: str, status: int = 0) -> dict[str, object]:
        return {"error": {"type": kind, "message": message}}

    def error_headers(self, kind: str, status: int) -> dict[str, str]:
        return {}

    def rate_limit_headers(self, retry_after: float, now: float) -> dict[str, str]:
        return {}

    def key_header(self, key: str) -> tuple[str, str]:
        return "Authorization", f"Bearer {key}"

    def with_model(self, plan: CallPlan, path: str, model: str) -> tuple[bytes, str] | None:
        return None


def body_with_model(body: bytes, model: str, key: str = "model") -> bytes | None:
    """``body`` (a JSON object naming its model under ``key``) asking ``model``; None when
    it names none."""
    import json

    from agent_sre.gateway.plan import json_object

    data = json_object(body)
    if data is None or key not in data:
        return None
    data[key] = model
    return json.dumps(data, separators=(",", ":")).encode()


def reset_stamp(now: float, seconds: int) -> str:
    """An RFC 3339 UTC time ``seconds`` after ``now`` (rate-limit reset headers)."""
    reset = datetime.fromtimestamp(now + seconds, tz=timezone.utc)
    return reset.strftime("%Y-%m-%dT%H:%M:%SZ")


def whole_seconds(retry_after: float) -> int:
    """``retry_after`` rounded up to a whole second, at least 1."""
    return max(1, int(-(-retry_after // 1)))


CREDENTIAL_HEADERS = ("Authorization", "x-api-key", "api-key", "x-goog-api-key")
"""Headers that carry a provider key (every shape's); an injected key replaces whichever the
agent sent."""
