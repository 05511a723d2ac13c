"""The API shapes the proxy speaks, declared once.

Adding a shape is one module here (a :class:`~.base.Provider`) and one entry in
:data:`PROVIDERS`; the configuration's ``proxy.routes[].api`` accepts exactly these names
(``ApiName`` is checked against the list at import).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

from agent_sre.gateway.plan import ResponseFacts, json_object
from agent_sre.gateway.providers import anthropic, mcp, openai, passthrough, tool

if TYPE_CHECKING:
    from agent_sre.config import ProxyRoute
    from agent_sre.gateway.plan import CallPlan
    from agent_sre.gateway.providers.base import Provider

PROVIDERS: dict[str, Provider] = {
    "openai": openai.PROVIDER,
    "anthropic": anthropic.PROVIDER,
    "tool": tool.PROVIDER,
    "mcp": mcp.PROVIDER,
    "passthrough": passthrough.PROVIDER,
}

ApiName = Literal["openai", "anthropic", "tool", "mcp", "passthrough"]
"""The names of :data:`PROVIDERS`, as a type for the configuration model."""

if set(get_args(ApiName)) != set(PROVIDERS):  # pragma: no cover - a drift fails every import
    raise ImportError(f"ApiName {get_args(ApiName)} and PROVIDERS {list(PROVIDERS)} differ")


def plan_call(route: ProxyRoute, method: str, path: str, body: bytes) -> CallPlan:
    """Reads a request of ``route`` (``path`` is relative to the route prefix)."""
    return PROVIDERS[route.api].plan(route, method, path, body)


def facts_from_json(plan: CallPlan, body: bytes) -> ResponseFacts:
    """What a complete JSON response told (its size alone when it is not a JSON object)."""
    data = json_object(body)
    if data is None:
        return ResponseFacts(output_chars=len(body))
    return PROVIDERS[plan.api].facts_from_json(plan, data)
