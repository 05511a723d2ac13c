"""The API shapes the proxy speaks, declared once.

Adding a shape is one module here (a :class:`~.base.Provider`) and one entry in
:data:`PROVIDERS`; the configuration's ``proxy.routes[].api`` accepts exactly these names
(``ApiName`` is checked against the list at import).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

from agent_sre.cost.pricing import ROUTE_PREFIX
from agent_sre.gateway.plan import ResponseFacts, UsageError, json_object, too_deep
from agent_sre.gateway.providers import (
    a2a,
    anthropic,
    azure,
    bedrock,
    gemini,
    mcp,
    openai,
    openai_compatible,
    passthrough,
    tool,
)

if TYPE_CHECKING:
    from agent_sre.config import ProxyRoute
    from agent_sre.gateway.plan import CallPlan
    from agent_sre.gateway.providers.base import Provider

PROVIDERS: dict[str, Provider] = {
    "openai": openai.PROVIDER,
    "anthropic": anthropic.PROVIDER,
    "gemini": gemini.PROVIDER,
    "azure_openai": azure.PROVIDER,
    "openai_compatible": openai_compatible.PROVIDER,
    "bedrock": bedrock.PROVIDER,
    "tool": tool.PROVIDER,
    "mcp": mcp.PROVIDER,
    "passthrough": passthrough.PROVIDER,
    "a2a": a2a.PROVIDER,
}

ApiName = Literal[
    "openai",
    "anthropic",
    "gemini",
    "azure_openai",
    "openai_compatible",
    "bedrock",
    "tool",
    "mcp",
    "passthrough",
    "a2a",
]
"""The names of :data:`PROVIDERS`, as a type for the configuration model."""

if set(get_args(ApiName)) != set(PROVIDERS):  # pragma: no cover - a drift fails every import
    raise ImportError(f"ApiName {get_args(ApiName)} and PROVIDERS {list(PROVIDERS)} differ")


def plan_call(route: ProxyRoute, method: str, path: str, body: bytes) -> CallPlan:
    """Reads a request of ``route`` (``path`` is relative to the route prefix).

    A body the provider cannot read (odd but parseable JSON it trips on) is planned as one
    naming no model: an LLM call stays an LLM call, and ``budgets.unpriced_models`` decides.
    """
    provider = PROVIDERS[route.api]
    refusal = too_deep(body)
    plan = None
    if not refusal:
        try:  # noqa: SIM105 - not contextlib.suppress: an object per call on the hot path
            plan = provider.plan(route, method, path, body)
        except Exception:  # never a 500 for a request's shape
            pass
    if plan is None:
        plan = provider.plan(route, method, path, b"")
        plan.body = body
        plan.refusal = refusal
    if plan.provider:
        if route.prices or not provider.price_id:
            plan.price_provider = ROUTE_PREFIX + route.name  # the route's own prices first
        elif plan.provider != provider.price_id:
            plan.price_provider = provider.price_id
    return plan


def facts_from_json(plan: CallPlan, body: bytes) -> ResponseFacts:
    """What a complete JSON response told (its size alone when it is not a JSON object).

    Never raises: a response the provider's reader trips on means unknown usage (the
    client gets the upstream's bytes whatever we make of them); usage figures that cannot
    be booked are reported in ``usage_problem``."""
    data = json_object(body)
    if data is None:
        return ResponseFacts(output_chars=len(body))
    try:
        return PROVIDERS[plan.api].facts_from_json(plan, data)
    except UsageError as exc:
        return ResponseFacts(output_chars=len(body), usage_problem=str(exc))
    except Exception:  # odd but parseable: unknown usage, estimated from the size
        return ResponseFacts(output_chars=len(body))
