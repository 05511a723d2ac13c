"""What a proxied call may cost (reserved before it goes out) and what it did cost."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_sre.cost.usage import TokenUsage, estimate_tokens

MAX_TOKENS_PER_CALL = 10_000_000
"""Tokens no one call can use (beyond every model's context today): the bound of reported
usage for a model whose context window the price data does not give, and of ``max_tokens``."""

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
        rates = pricer.rates(plan.pricing, plan.model, now)
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


def usage_problem(pricer: Pricer, plan: CallPlan, usage: TokenUsage, now: float) -> str | None:
    """Why ``usage`` (as an upstream reported it) cannot be booked: a figure beyond what the
    model can take (its context window, or :data:`MAX_TOKENS_PER_CALL`, times the choices
    asked for) or negative; None when it can."""
    model = plan.priced_as or plan.model
    rates = pricer.rates("" if plan.priced_as else plan.pricing, model, now)
    window = rates.context_window if rates is not None and rates.context_window else None
    limit = (window or MAX_TOKENS_PER_CALL) * max(plan.choices, 1)
    for name, value in (
        ("input_tokens", usage.input_tokens),
        ("output_tokens", usage.output_tokens),
        ("cache_read_tokens", usage.cache_read_tokens),
        ("cache_write_tokens", usage.cache_write_tokens),
    ):
        if value < 0:
            return f"{name} is negative"
        if value > limit:
            return f"{name} is beyond what the model can take ({limit} tokens)"
    return None


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
    cost = pricer.price(plan.pricing, model, usage, now)
    if cost is None and model != plan.model:
        cost = pricer.price(plan.pricing, plan.model, usage, now)
    if cost is None and plan.priced_as:
        cost = pricer.price("", plan.priced_as, usage, now)
    return cost
