"""Token usage of one call, as read from a response or estimated from what passed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TokenUsage:
    """Tokens of one LLM call.

    ``estimated`` is true when any figure was not read from the provider's usage block
    (a stream without usage, an abandoned stream, a response without usage).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


CHARS_PER_TOKEN = 4
"""A coarse, provider-neutral ratio; estimates are marked as such and never zero."""


def estimate_tokens(chars: int) -> int:
    """Tokens for ``chars`` characters of text (at least 1 when anything passed)."""
    if chars <= 0:
        return 0
    return max(1, -(-chars // CHARS_PER_TOKEN))
