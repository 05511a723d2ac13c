from __future__ import annotations

import pytest
from genai_prices import Usage, calc_price
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_sre.cost import pricing
from agent_sre.cost.pricing import Pricer
from agent_sre.cost.spec import ModelPrice
from agent_sre.cost.usage import TokenUsage, estimate_tokens

NOW = 1_760_000_000.0
MODELS = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
    ("anthropic", "claude-sonnet-4-20250514"),
    ("anthropic", "claude-3-5-haiku-latest"),
    ("google", "gemini-2.5-pro"),
    ("openai", "text-embedding-3-small"),
]


@settings(max_examples=60, deadline=None)
@given(
    model=st.sampled_from(MODELS),
    uncached=st.integers(0, 300_000),
    cache_read=st.integers(0, 50_000),
    cache_write=st.integers(0, 50_000),
    output=st.integers(0, 50_000),
)
def test_matches_genai_prices(model, uncached, cache_read, cache_write, output) -> None:
    provider, name = model
    usage = TokenUsage(uncached + cache_read + cache_write, output, cache_read, cache_write)
    expected = calc_price(
        Usage(
            input_tokens=usage.input_tokens,
            output_tokens=output,
            cache_read_tokens=cache_read or None,
            cache_write_tokens=cache_write or None,
        ),
        name,
        provider_id=provider,
    ).total_price
    assert Pricer().price(provider, name, usage, NOW) == pytest.approx(
        float(expected), rel=1e-9, abs=1e-15
    )


def test_unknown_model_is_unpriced_not_zero() -> None:
    pricer = Pricer()
    assert pricer.price("openai", "no-such-model-xyz", TokenUsage(10, 10), NOW) is None
    assert pricer.rates("openai", "no-such-model-xyz", NOW) is None


def test_override_prices_private_model_and_wins_over_data() -> None:
    pricer = Pricer(
        {
            "private": ModelPrice(input_per_mtok=2, output_per_mtok=4, cache_read_per_mtok=1),
            "gpt-4o-mini": ModelPrice(input_per_mtok=0, output_per_mtok=0),
        }
    )
    usage = TokenUsage(1_000_000, 500_000, cache_read_tokens=200_000)
    assert pricer.price("", "private", usage, NOW) == pytest.approx(0.8 * 2 + 0.2 + 2)
    assert pricer.price("openai", "gpt-4o-mini", usage, NOW) == 0


def test_rates_memoised_and_context_window() -> None:
    pricer = Pricer()
    rates = pricer.rates("openai", "gpt-4o-mini", NOW)
    assert rates is not None and rates.context_window == 128000 and rates.flat
    assert pricer.rates("openai", "gpt-4o-mini", NOW) is rates


def test_estimate_tokens() -> None:
    assert estimate_tokens(0) == 0
    assert estimate_tokens(1) == 1
    assert estimate_tokens(8) == 2
    assert estimate_tokens(9) == 3


@settings(max_examples=200, deadline=None)
@given(
    model=st.sampled_from(MODELS),
    input_tokens=st.integers(0, 10**12),
    output_tokens=st.integers(0, 10**12),
    cache_read=st.integers(0, 10**6),
    cache_write=st.integers(0, 10**6),
)
def test_priced_is_cost_to_the_bit(
    model: tuple[str, str], input_tokens: int, output_tokens: int, cache_read: int, cache_write: int
) -> None:
    """The span pricer's shortcut (counts, no TokenUsage) gives the very float cost() does."""
    rates = Pricer().rates(*model, NOW)
    assert rates is not None
    usage = TokenUsage(input_tokens, output_tokens, cache_read, cache_write)
    assert rates.priced(input_tokens, output_tokens, cache_read, cache_write) == rates.cost(usage)
    assert rates.priced(input_tokens, output_tokens) == rates.cost(
        TokenUsage(input_tokens, output_tokens)
    )


def test_memo_is_bounded_against_model_names_never_seen_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Model names come from clients: one sending a new name per span cannot grow the memo
    past its bound, and known models still price right after their entries were evicted."""
    monkeypatch.setattr(pricing, "MAX_MODELS_MEMOISED", 50)
    pricer = Pricer(
        {f"private-{n}": ModelPrice(input_per_mtok=1, output_per_mtok=2) for n in range(60)}
    )
    known = pricer.rates("openai", "gpt-4o-mini", NOW)
    for n in range(200):
        assert pricer.rates("openai", f"made-up-{n}", NOW) is None
        assert len(pricer._unknown) <= 50 and len(pricer._rates) == 1
    # the made-up names never pushed the priced model out; the oldest of them went first
    assert pricer.memoised("openai", "gpt-4o-mini") is known
    assert pricer.memoised("openai", "made-up-199") is None
    assert pricer.memoised("openai", "made-up-0") is pricing.NOT_LOOKED_UP
    for n in range(60):  # priced pairs are bounded as well
        assert pricer.rates("", f"private-{n}", NOW) is not None
    assert len(pricer._rates) <= 50
    assert pricer.memoised("openai", "gpt-4o-mini") is pricing.NOT_LOOKED_UP
    assert pricer.rates("openai", "gpt-4o-mini", NOW) == known
    assert pricer.price("openai", "gpt-4o-mini", TokenUsage(1000, 100), NOW) == pytest.approx(
        (1000 * 0.15 + 100 * 0.6) / 1e6
    )


def test_names_too_long_to_be_a_model_are_unpriced_without_a_lookup_or_a_memo(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lookup's time grows with the name and the memos hold the names: past
    ``MAX_NAME_LENGTH`` a model or provider name is unpriced at once, remembered nowhere."""
    lookups: list[str] = []
    pricer = Pricer(
        {"m" * pricing.MAX_NAME_LENGTH: ModelPrice(input_per_mtok=1, output_per_mtok=2)}
    )
    original = pricer._lookup

    def counting(provider: str, model: str, now: float) -> pricing.ModelRates | None:
        lookups.append(model)
        return original(provider, model, now)

    monkeypatch.setattr(pricer, "_lookup", counting)
    at_most = "m" * pricing.MAX_NAME_LENGTH
    assert pricer.rates("", at_most, NOW) is not None and lookups == [at_most]  # the limit: kept
    for name in ("m" * (pricing.MAX_NAME_LENGTH + 1), "gpt-4o-" + "x" * 200_000):
        assert pricer.memoised("openai", name) is None
        assert pricer.rates("openai", name, NOW) is None
        assert pricer.price("openai", name, TokenUsage(10, 10), NOW) is None
    assert pricer.rates("x" * (pricing.MAX_NAME_LENGTH + 1), "gpt-4o-mini", NOW) is None
    assert lookups == [at_most] and len(pricer._unknown) == 0
