"""The Mann-Whitney U test written out, against values worked by hand (and against SciPy in
test_stats_parity.py)."""

from __future__ import annotations

import math

import pytest

from agent_sre.delivery.stats import exact_p_greater, mann_whitney_u, percentile, u_counts


def test_separated_samples() -> None:
    high = mann_whitney_u([4, 5, 6], [1, 2, 3])
    assert high.u == 9
    # mean 4.5, variance 3*3/12*7 = 5.25; z = (9 - 4.5 - 0.5) / sqrt(5.25)
    assert high.z == pytest.approx(4 / math.sqrt(5.25))
    # small and untied: exact, 1 of the C(6, 3) = 20 orderings puts all of the first on top
    assert high.p_greater == pytest.approx(1 / 20)
    low = mann_whitney_u([1, 2, 3], [4, 5, 6])
    assert low.u == 0
    assert low.p_greater == 1.0


def test_larger_samples_take_the_normal_approximation() -> None:
    high = mann_whitney_u([float(i) for i in range(10, 20)], [float(i) for i in range(10)])
    assert high.u == 100
    variance = 10 * 10 / 12 * 21
    assert high.z == pytest.approx((100 - 50 - 0.5) / math.sqrt(variance))
    assert high.p_greater == pytest.approx(0.5 * math.erfc(high.z / math.sqrt(2)))


def test_the_exact_distribution_counts_orderings() -> None:
    # 2 + 2 values: U = 0, 1, 2, 3, 4 in 1, 1, 2, 1, 1 of the 6 orderings
    assert u_counts(2, 2, 4) == [1, 1, 2, 1, 1]
    assert [exact_p_greater(u, 2, 2) for u in range(6)] == pytest.approx(
        [1, 5 / 6, 4 / 6, 2 / 6, 1 / 6, 0]
    )
    assert sum(u_counts(8, 300, 8 * 300)) == math.comb(308, 8)


def test_ties_are_averaged_and_shrink_the_variance() -> None:
    result = mann_whitney_u([1, 2, 2], [2, 3, 3])
    # ranks: 1 -> 1, the three 2s -> 3, the two 3s -> 5.5; first: 1 + 3 + 3 = 7
    assert result.u == 7 - 6
    ties = (3**3 - 3) + (2**3 - 2)
    variance = 9 / 12 * (7 - ties / (6 * 5))
    assert result.z == pytest.approx((1 - 4.5 - 0.5) / math.sqrt(variance))


def test_identical_samples_tell_nothing() -> None:
    assert mann_whitney_u([1.0] * 30, [1.0] * 30).p_greater == 1.0
    assert mann_whitney_u([0, 1] * 20, [0, 1] * 20).p_greater > 0.4


def test_an_empty_sample_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        mann_whitney_u([], [1.0])


def test_percentile() -> None:
    assert percentile([], 0.95) == 0
    assert percentile([3.0], 0.95) == 3
    assert percentile([float(i) for i in range(1, 101)], 0.95) == pytest.approx(95.05)
