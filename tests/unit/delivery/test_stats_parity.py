"""The Mann-Whitney U test written here agrees with SciPy's (``scipy.stats.mannwhitneyu``,
one-sided "greater", its default method: exact for a sample of at most 8 values with no ties,
else the normal approximation with tie and continuity corrections) over generated samples:
ties, tiny samples, one small sample against a large one, values far apart and identical."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent_sre.delivery.stats import EXACT_UP_TO, exact_p_greater, mann_whitney_u

scipy_stats = pytest.importorskip("scipy.stats", reason="scipy (dev extra) is the reference")

# few distinct values make ties; any finite floats make them rare
tied = st.integers(-3, 3).map(float)
spread = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9)
values = st.one_of(tied, spread, st.sampled_from([0.0, -0.0, 1e-300, 5e-324, math.inf, -math.inf]))


def sample(max_size: int) -> st.SearchStrategy[list[float]]:
    return st.one_of(
        st.lists(tied, min_size=1, max_size=max_size),
        st.lists(spread, min_size=1, max_size=max_size),
        st.lists(values, min_size=1, max_size=max_size),
    )


def assert_agrees(first: list[float], second: list[float]) -> None:
    ours = mann_whitney_u(first, second)
    theirs = scipy_stats.mannwhitneyu(first, second, alternative="greater")
    assert ours.u == float(theirs.statistic)
    assert ours.p_greater == pytest.approx(float(theirs.pvalue), rel=1e-9, abs=1e-15), (
        first,
        second,
    )


@settings(max_examples=600, deadline=None)
@given(sample(12), sample(12))
@example([1.0], [2.0])
@example([2.0], [1.0])
@example([1.0], [1.0])
@example([1.0, 2.0], [1.0, 2.0])
@example([5.0] * 8, [5.0] * 8)
@example([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], [0.5])
@example([0.0], [-0.0])
@example([math.inf, 1.0], [-math.inf, 2.0])
def test_small_samples_agree_with_scipy(first: list[float], second: list[float]) -> None:
    assert_agrees(first, second)


@settings(max_examples=150, deadline=None)
@given(sample(EXACT_UP_TO + 2), sample(300))
def test_a_small_sample_against_a_large_one_agrees_with_scipy(
    first: list[float], second: list[float]
) -> None:
    assert_agrees(first, second)
    assert_agrees(second, first)


@settings(max_examples=60, deadline=None)
@given(sample(80), sample(80))
def test_larger_samples_agree_with_scipy(first: list[float], second: list[float]) -> None:
    assert_agrees(first, second)


@pytest.mark.parametrize(("n1", "n2"), [(1, 1), (1, 9), (3, 4), (8, 8), (8, 40), (2, 200)])
def test_the_exact_distribution_is_scipys_at_every_u(n1: int, n2: int) -> None:
    sf = scipy_stats.mannwhitneyu  # via samples: U = u exactly when u of the pairs are won
    for u in range(n1 * n2 + 2):
        first = [float(u // n1 + (1 if i < u % n1 else 0)) + 0.5 for i in range(n1)]
        second = [float(j) for j in range(n2)]
        theirs = sf(first, second, alternative="greater", method="exact")
        if float(theirs.statistic) != u:
            continue  # not every u is reached by this construction
        assert exact_p_greater(u, n1, n2) == pytest.approx(float(theirs.pvalue), rel=1e-12)


def test_nan_is_refused_where_scipy_answers_nan() -> None:
    assert math.isnan(scipy_stats.mannwhitneyu([1.0, math.nan], [2.0]).pvalue)
    with pytest.raises(ValueError, match="NaN"):
        mann_whitney_u([1.0, math.nan], [2.0])
