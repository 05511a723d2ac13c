"""The Mann-Whitney U test (as Kayenta judges canaries), written out: ranks with ties
averaged, the normal approximation with tie and continuity corrections."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


@dataclass(frozen=True)
class UTest:
    u: float
    """U of the first sample (how often it is the greater of a pair; ties count half)."""
    z: float
    p_greater: float
    """One-sided p-value of "the first sample tends to be greater than the second"."""


def mann_whitney_u(first: Sequence[float], second: Sequence[float]) -> UTest:
    """Whether ``first`` tends to be greater than ``second``.

    Raises:
        ValueError: a sample is empty.
    """
    n1, n2 = len(first), len(second)
    if not n1 or not n2:
        raise ValueError("both samples need at least one value")
    pooled = sorted([*first, *second])
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
    return UTest(u, z, 0.5 * math.erfc(z / math.sqrt(2)))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0 to 1) by linear interpolation; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
