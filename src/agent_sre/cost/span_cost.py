"""Prices received LLM spans from their token usage (``agent_sre.cost_usd``).

Agents that report ``gen_ai.usage.*`` but no cost get one written onto the span, so every
backend upstream, and the ``cost_per_task`` SLI, sees what the call cost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_sre.cost.pricing import NOT_LOOKED_UP
from agent_sre.cost.usage import TokenUsage
from agent_sre.tracing import conventions as c
from agent_sre.tracing.conventions import AgentSpanKind
from agent_sre.tracing.view import (
    INPUT_TOKEN_KEYS,
    MAX_TOKEN_COUNT,
    OUTPUT_TOKEN_KEYS,
    first_int,
)
from agent_sre.tracing.wirespan import WireSpan, append_attribute, double_attribute

if TYPE_CHECKING:
    from collections.abc import Callable

    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    from agent_sre.cost.pricing import Pricer
    from agent_sre.tracing.view import AgentSpan

PRICING_KEYS: frozenset[str] = frozenset(
    {c.GEN_AI_PROVIDER_NAME, c.GEN_AI_SYSTEM, *c.MODEL_KEYS, *c.USAGE_KEYS, c.AGENT_SRE_COST_USD}
)
"""What pricing reads from a span."""


LOOKUPS_PER_SECOND = 20.0
"""Models never seen before looked up in the prices' data a second, at most (after a burst of
:data:`LOOKUP_BURST`). A lookup costs 0.1-1 ms of the event loop, and one request can carry
thousands of LLM spans each naming a model nobody has heard of: past the budget such a span is
forwarded without a cost (counted), and its model is looked up on a later span."""
LOOKUP_BURST = 50


class SpanCostEnricher:
    """Writes ``agent_sre.cost_usd`` on LLM spans that carry token usage but no cost.

    Args:
        pricer: model prices.
        on_unpriced: called with the model name when the model has no known price (the span
            is then left without a cost, never given zero).
        on_deferred: called with the model name when the span is left without a cost because
            its model was not looked up (:data:`LOOKUPS_PER_SECOND`).
    """

    def __init__(
        self,
        pricer: Pricer,
        on_unpriced: Callable[[str], None] = lambda _: None,
        on_deferred: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.pricer = pricer
        self.on_unpriced = on_unpriced
        self.on_deferred = on_deferred
        self._encode_cost = double_attribute(_COST)
        self._lookups = float(LOOKUP_BURST)
        self._refilled: float | None = None

    def _may_look_up(self, now: float) -> bool:
        """Takes one lookup from the budget (:data:`LOOKUPS_PER_SECOND`, refilled by the
        spans' receive times), or says there is none left."""
        last, self._refilled = self._refilled, now
        budget = self._lookups
        if last is not None and now > last:
            budget = min(budget + (now - last) * LOOKUPS_PER_SECOND, float(LOOKUP_BURST))
        if budget < 1.0:
            self._lookups = budget
            return False
        self._lookups = budget - 1.0
        return True

    # hot path: per LLM span
    def __call__(self, span: Span, view: AgentSpan, now: float) -> None:
        attrs = view.attrs
        if (
            view.kind is not _LLM
            or _COST in attrs
            or c.AGENT_SRE_GATEWAY_SPAN_ID in attrs  # the proxy's facts (and price) came
            or c.AGENT_SRE_ROLE in attrs  # a second view of a call counted elsewhere
        ):
            return
        # each fact from its first key when that holds what the view's reading would return
        # from it (a non-empty string, an int count), else the view's reading of every key
        get = attrs.get
        model = get(_MODEL)
        if type(model) is not str or not model:
            model = view.model
            if model is None:
                return
        input_tokens = get(_INPUT)
        if type(input_tokens) is not int or not 0 <= input_tokens <= MAX_TOKEN_COUNT:
            input_tokens = first_int(attrs, INPUT_TOKEN_KEYS)
        output_tokens = get(_OUTPUT)
        if type(output_tokens) is not int or not 0 <= output_tokens <= MAX_TOKEN_COUNT:
            output_tokens = first_int(attrs, OUTPUT_TOKEN_KEYS)
        if input_tokens is None and output_tokens is None:
            return
        provider = get(_PROVIDER)
        if type(provider) is not str or not provider:
            provider = view.provider or ""
        rates = self.pricer.memoised(provider, model)
        if rates is NOT_LOOKED_UP:
            if not self._may_look_up(now):
                self.on_deferred(model)
                return
            rates = self.pricer.rates(provider, model, now)
        if rates is None:
            self.on_unpriced(model)
            return
        if rates.flat:  # most models: Pricer.price's arithmetic without its objects
            cost = rates.priced(input_tokens or 0, output_tokens or 0)
        else:
            usage = TokenUsage(input_tokens=input_tokens or 0, output_tokens=output_tokens or 0)
            priced = self.pricer.price(provider, model, usage, now)
            assert priced is not None  # rates were found
            cost = priced
        handle: Span | WireSpan = span  # the native pass hands a WireSpan in
        if isinstance(handle, WireSpan):
            handle.append(self._encode_cost(cost))
        else:
            append_attribute(span, _COST, cost)
        attrs[_COST] = cost


_COST = c.AGENT_SRE_COST_USD
_LLM = AgentSpanKind.LLM_INFERENCE
_MODEL = c.MODEL_KEYS[0]
_PROVIDER = c.GEN_AI_PROVIDER_NAME
_INPUT = INPUT_TOKEN_KEYS[0]
_OUTPUT = OUTPUT_TOKEN_KEYS[0]
