"""What every API shape offers the proxy: the small protocol each provider module fills."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from agent_sre.config import ProxyRoute
    from agent_sre.gateway.plan import CallPlan, ResponseFacts


class Provider(Protocol):
    """All knowledge of one API shape.

    Attributes:
        api: the route's ``api`` value naming this shape.
        key_header: where an injected API key goes (``inject_api_key_env``).
    """

    api: str

    def plan(self, route: ProxyRoute, method: str, path: str, body: bytes) -> CallPlan:
        """Reads a request (``path`` is relative to the route prefix)."""
        ...

    def facts_from_json(self, plan: CallPlan, data: dict[str, Any]) -> ResponseFacts:
        """Usage, model, output size (or a tool error) of a complete JSON response."""
        ...

    def on_event(
        self, plan: CallPlan, facts: ResponseFacts, name: bytes, data: dict[str, Any], event: bytes
    ) -> bytes:
        """Reads one server-sent event into ``facts``; returns the bytes to pass on (the event
        itself, rewritten, or nothing)."""
        ...

    def error_body(self, kind: str, message: str) -> dict[str, object]:
        """The shape's error JSON carrying our machine-readable ``kind``."""
        ...

    def key_header(self, key: str) -> tuple[str, str]:
        """The header (name, value) that carries an injected API key."""
        ...


CREDENTIAL_HEADERS = ("Authorization", "x-api-key")
"""Headers that carry a provider key; an injected key replaces whichever the agent sent."""


class PlainHttp:
    """Defaults for shapes with no usage and the generic error body (tools, pass-through)."""

    api = ""

    def facts_from_json(self, plan: CallPlan, data: dict[str, Any]) -> ResponseFacts:
        from agent_sre.gateway.plan import ResponseFacts

        return ResponseFacts()

    def on_event(
        self, plan: CallPlan, facts: ResponseFacts, name: bytes, data: dict[str, Any], event: bytes
    ) -> bytes:
        return event

    def error_body(self, kind: str, message: str) -> dict[str, object]:
        return {"error": {"type": kind, "message": message}}

    def key_header(self, key: str) -> tuple[str, str]:
        return "Authorization", f"Bearer {key}"
