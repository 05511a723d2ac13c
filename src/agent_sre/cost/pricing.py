"""Prices of LLM calls: genai-prices' bundled data, overridden per model from configuration.

An unknown model is *unpriced* (``None``), never zero: callers count it instead of
inventing spend. Model lookups are memoised, and flat per-token prices (most models) are
computed directly from the looked-up rates; anything else (tiered prices) goes through
``genai_prices.calc_price`` so its rules apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from genai_prices import Usage, calc_price

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from agent_sre.config import ProxyRoute
    from agent_sre.cost.spec import ModelPrice
    from agent_sre.cost.usage import TokenUsage

V = TypeVar("V")
_PER_MTOK = 1_000_000.0
_FLAT_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")


@dataclass(frozen=True)
class ModelRates:
    """USD per million tokens of one model, and the largest context it takes."""

    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float
    cache_write_per_mtok: float
    context_window: int | None
    flat: bool
    """True when these four rates are the whole price (no tiers)."""

    def cost(self, usage: TokenUsage) -> float:
        return self.priced(
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_tokens,
            usage.cache_write_tokens,
        )

    def priced(
        self, input_tokens: int, output_tokens: int, cache_read: int = 0, cache_write: int = 0
    ) -> float:
        """:meth:`cost` of these counts (one arithmetic for both: the same float)."""
        uncached = input_tokens - cache_read - cache_write
        if uncached < 0:  # max(), without the builtin's call on the span path
            uncached = 0
        return (
            uncached * self.input_per_mtok
            + cache_read * self.cache_read_per_mtok
            + cache_write * self.cache_write_per_mtok
            + output_tokens * self.output_per_mtok
        ) / _PER_MTOK


MAX_MODELS_MEMOISED = 4096
"""Most (provider, model) pairs a :class:`Pricer` remembers priced, and as many unknown."""
MAX_NAME_LENGTH = 256
"""A longer model or provider name is unpriced at once, never looked up nor remembered:
genai-prices' longest model id has 61 characters, a lookup's time grows with the name's
length (a 200,000-character name held the event loop 41-47 ms), and the memos' entries hold
the names (4,096 such names would have been 800 MB)."""

ROUTE_PREFIX = "route:"
"""A provider id naming a proxy route (``route:NAME``): its ``prices`` come first."""
ZERO = ModelRates(0.0, 0.0, 0.0, 0.0, None, flat=True)
NOT_LOOKED_UP = ModelRates(-1.0, -1.0, -1.0, -1.0, None, flat=False)
""":meth:`Pricer.memoised`'s answer for a pair it does not hold (compare by identity)."""


@dataclass(frozen=True)
class RoutePrices:
    """A route's own prices: per model, then genai-prices under ``fallback`` (its
    provider's id), then ``default`` (zero for a local server)."""

    models: Mapping[str, ModelPrice]
    fallback: str
    default: ModelRates | None


class Pricer:
    """Computes USD for token usage on a model of a provider."""

    def __init__(
        self,
        overrides: Mapping[str, ModelPrice] | None = None,
        routes: Iterable[ProxyRoute] = (),
    ) -> None:
        self._overrides = dict(overrides or {})
        self._rates: dict[tuple[str, str], ModelRates] = {}
        self._unknown: dict[tuple[str, str], None] = {}
        self._routes = {ROUTE_PREFIX + route.name: route_prices(route) for route in routes}

    def price(self, provider: str, model: str, usage: TokenUsage, now: float) -> float | None:
        """USD for ``usage`` on ``model`` at ``now``, or None when the model is unpriced."""
        rates = self.rates(provider, model, now)
        if rates is None:
            return None
        if rates.flat:
            return rates.cost(usage)
        if provider.startswith(ROUTE_PREFIX):  # tiered: only genai-prices' data has tiers
            route = self._routes.get(provider)
            provider = route.fallback if route is not None else ""
        result = calc_price(
            _usage(usage),
            model,
            provider_id=provider or None,
            genai_request_timestamp=_when(now),
        )
        return float(result.total_price)

    def rates(self, provider: str, model: str, now: float) -> ModelRates | None:
        """The model's rates (memoised), or None when neither config nor data knows it."""
        found = self.memoised(provider, model)
        if found is NOT_LOOKED_UP:
            found = self._lookup(provider, model, now)
            # model names come from clients: bounded memos (the oldest entry goes), so names
            # never seen again cannot grow them, and the unknown ones (what a client making
            # names up sends) never push a priced model out
            if found is None:
                _remember(self._unknown, (provider, model), None)
            else:
                _remember(self._rates, (provider, model), found)
        return found

    def memoised(self, provider: str, model: str) -> ModelRates | None:
        """:meth:`rates` if this pair was looked up already (and is still remembered), or
        needs no lookup (a name past :data:`MAX_NAME_LENGTH` is unpriced), else
        :data:`NOT_LOOKED_UP` (a lookup in genai-prices' data costs 0.1-1 ms)."""
        if len(model) > MAX_NAME_LENGTH or len(provider) > MAX_NAME_LENGTH:
            return None
        key = (provider, model)
        found = self._rates.get(key, NOT_LOOKED_UP)
        if found is NOT_LOOKED_UP and key in self._unknown:
            return None
        return found

    def _lookup(self, provider: str, model: str, now: float) -> ModelRates | None:
        if provider.startswith(ROUTE_PREFIX):
            route = self._routes.get(provider)
            if route is None:
                return None
            price = route.models.get(model) or route.models.get("*")
            if price is not None:
                return _rates_of(price)
            known = self._lookup(route.fallback, model, now) if route.fallback else None
            return known if known is not None else route.default
        override = self._overrides.get(model)
        if override is not None:
            return _rates_of(override)
        try:
            found = calc_price(
                Usage(input_tokens=1, output_tokens=1),
                model,
                provider_id=provider or None,
                genai_request_timestamp=_when(now),
            )
        except LookupError:
            return None
        prices: dict[str, Any] = dict(vars(found.model_price))
        flat = all(isinstance(prices.get(k), (Decimal, type(None))) for k in _FLAT_KEYS)
        window = getattr(found.model, "context_window", None)
        base_in = _base(prices.get("input_mtok"))
        return ModelRates(
            base_in,
            _base(prices.get("output_mtok")),
            _base(prices.get("cache_read_mtok"), base_in),
            _base(prices.get("cache_write_mtok"), base_in),
            window if isinstance(window, int) else None,
            flat=flat,
        )


def _remember(memo: dict[tuple[str, str], V], key: tuple[str, str], value: V) -> None:
    if len(memo) >= MAX_MODELS_MEMOISED:
        del memo[next(iter(memo))]
    memo[key] = value


def _rates_of(price: ModelPrice) -> ModelRates:
    return ModelRates(
        price.input_per_mtok,
        price.output_per_mtok,
        _or(price.cache_read_per_mtok, price.input_per_mtok),
        _or(price.cache_write_per_mtok, price.input_per_mtok),
        price.context_window,
        flat=True,
    )


def route_prices(route: ProxyRoute) -> RoutePrices:
    """What a route's calls are priced by (its provider's own prices id, from the one list
    of API shapes; a shape with none, a local server, defaults to zero)."""
    from agent_sre.gateway.providers import PROVIDERS

    fallback = PROVIDERS[route.api].price_id
    return RoutePrices(route.prices, fallback, None if fallback else ZERO)


def _base(value: Any, default: float = 0.0) -> float:
    """A flat rate, or the base tier of a tiered one (for worst-case estimates)."""
    if value is None:
        return default
    if isinstance(value, Decimal):
        return float(value)
    base = getattr(value, "base", None)
    tiers = getattr(value, "tiers", None) or []
    highest = max([base, *(tier.price for tier in tiers)], key=lambda v: v or 0)
    return float(highest) if highest is not None else default


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _usage(usage: TokenUsage) -> Usage:
    return Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens or None,
        cache_write_tokens=usage.cache_write_tokens or None,
    )


def _when(now: float) -> datetime:
    return datetime.fromtimestamp(now, tz=timezone.utc)
