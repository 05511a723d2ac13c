"""What a proxied call may cost (reserved before it goes out) and what it did cost."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_sre.cost.usage import TokenUsage, estimate_tokens

if TYPE_CHECKING:
    from agent_sre.cost.pricing import Pricer
    from agent_sre.gateway.plan import CallPlan, ResponseFacts


def worst_case_usd(pricer: Pricer, plan: CallPlan, default_max_output: int, now: float) -> float:
    """The most the call can cost: estimated input plus ``max_tokens`` (or
    ``default_max_output``, bounded by the model's context) of output. Unpriced models
    reserve nothing. Each of several choices (``n``) may produce the whole output."""
    if plan.priced_as:
        rates = pricer.rates("", plan.priced_as, now)
    else:
        rates = pricer.rates(plan.provider, plan.model, now)
    if rates is None:
        return 0.0
    output = plan.max_output_tokens
    if output is None:
        output = default_max_output
        if rates.context_window:
            output = min(output, rates.context_window)
    return (
        plan.input_tokens_estimate * rates.input_per_mtok
        + output * plan.choices * rates.output_per_mtok
    ) / 1_000_000


def settled_usage(
    plan: CallPlan, facts: ResponseFacts, reached_upstream: bool, status: int
) -> TokenUsage | None:
    """Usage as reported, or estimated from what passed (never zero once the call reached
    the provider with a success status)."""
    if facts.usage is not None and facts.usage_final:
        return facts.usage
    if not reached_upstream or not 200 <= status < 300:
        return facts.usage
    base = facts.usage or TokenUsage()
    return TokenUsage(
        input_tokens=base.input_tokens or plan.input_tokens_estimate,
        output_tokens=max(base.output_tokens, estimate_tokens(facts.output_chars)),
        cache_read_tokens=base.cache_read_tokens,
        cache_write_tokens=base.cache_write_tokens,
        estimated=True,
    )


def call_cost(
    pricer: Pricer, plan: CallPlan, facts: ResponseFacts, usage: TokenUsage, now: float
) -> float | None:
    """USD of ``usage`` on the model that answered (or the one asked for when only that one
    is priced); None when neither is."""
    model = facts.response_model or plan.model
    cost = pricer.price(plan.provider, model, usage, now)
    if cost is None and model != plan.model:
        cost = pricer.price(plan.provider, plan.model, usage, now)
    if cost is None and plan.priced_as:
        cost = pricer.price("", plan.priced_as, usage, now)
    return cost
