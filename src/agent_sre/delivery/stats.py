"""The Mann-Whitney U test (as Kayenta judges canaries), written out: ranks with ties
averaged; the p-value from the exact distribution of U when a sample is small and no values
tie, else from the normal approximation with tie and continuity corrections — SciPy's
``mannwhitneyu(..., alternative="greater")`` with its default method, which
tests/unit/delivery/test_stats_parity.py checks it against."""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


EXACT_UP_TO = 8
"""A sample this small (and no tied values) takes the exact p-value, as SciPy's default does:
there the normal approximation is off by up to a few hundredths, enough to flip a verdict."""


@dataclass(frozen=True)
class UTest:
    u: float
    """U of the first sample (how often it is the greater of a pair; ties count half)."""
    z: float
    """U standardised by the normal approximation (continuity and ties corrected)."""
    p_greater: float
    """One-sided p-value of "the first sample tends to be greater than the second"."""


def mann_whitney_u(first: Sequence[float], second: Sequence[float]) -> UTest:
    """Whether ``first`` tends to be greater than ``second``.

    Raises:
        ValueError: a sample is empty or holds NaN (which has no rank).
    """
    n1, n2 = len(first), len(second)
    if not n1 or not n2:
        raise ValueError("both samples need at least one value")
    pooled = sorted([*first, *second])
    if any(value != value for value in pooled):
        raise ValueError("a sample holds NaN, which has no rank")
    n = n1 + n2
    rank_of: dict[float, float] = {}
    ties = 0.0
    i = 0
    while i < n:
        value = pooled[i]
        j = i
        while j + 1 < n and pooled[j + 1] == value:
            j += 1
        rank_of[value] = (i + j) / 2 + 1  # ranks start at 1; ties share their average
        size = j - i + 1
        ties += size**3 - size
        i = j + 1
    rank_sum = math.fsum(rank_of[value] for value in first)
    u = rank_sum - n1 * (n1 + 1) / 2
    mean = n1 * n2 / 2
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    if variance <= 0:  # every value the same: nothing tells the samples apart
        return UTest(u, 0.0, 1.0)
    z = (u - mean - 0.5) / math.sqrt(variance)
    if min(n1, n2) <= EXACT_UP_TO and not ties:
        return UTest(u, z, exact_p_greater(int(u), n1, n2))
    return UTest(u, z, 0.5 * math.erfc(z / math.sqrt(2)))


def exact_p_greater(u: int, n1: int, n2: int) -> float:
    """P(U >= ``u``) when the samples come from one distribution and no values tie.

    U's distribution is symmetric, so only the shorter tail is counted: P(U <= m*k - u) above
    the middle (exact however small), 1 - P(U <= u - 1) below it (then at least about 1/2).
    """
    m, k = min(n1, n2), max(n1, n2)
    if u <= 0:
        return 1.0
    if u > m * k:
        return 0.0
    whole = math.comb(m + k, m)
    if 2 * u > m * k:
        return sum(u_counts(m, k, m * k - u)) / whole
    return 1.0 - sum(u_counts(m, k, u - 1)) / whole


def u_counts(m: int, k: int, up_to: int) -> list[int]:
    """How many of the orderings of ``m`` + ``k`` distinct values give U = 0, 1, ...
    ``up_to``.

    They are the coefficients of the Gaussian binomial [m+k choose m] in q, the product over
    i = 1..m of (1 - q^(k+i)) / (1 - q^i). Each step leaves a polynomial with whole
    coefficients, and a coefficient depends only on those below it, so the counts are exact
    when cut at ``up_to``. O(m^2 up_to), in strides the interpreter runs in C.
    """
    size = up_to + 1
    counts = [1] + [0] * (size - 1)
    for i in range(1, m + 1):
        shift = k + i  # times (1 - q^shift)
        if shift < size:
            counts[shift:] = [
                a - b for a, b in zip(counts[shift:], counts[: size - shift], strict=True)
            ]
        for start in range(i):  # divided by (1 - q^i): a running sum along each stride of i
            counts[start::i] = accumulate(counts[start::i])
    return counts


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0 to 1) by linear interpolation; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
