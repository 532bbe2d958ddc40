import math

import numpy as np
import pytest

from app.metrics import bootstrap_ci, bootstrap_ratio_ci


def test_empty_input_gives_nan() -> None:
    assert all(math.isnan(v) for v in bootstrap_ci([]))
    assert all(math.isnan(v) for v in bootstrap_ci([np.nan, np.nan]))
    assert all(math.isnan(v) for v in bootstrap_ratio_ci([], []))
    assert all(math.isnan(v) for v in bootstrap_ratio_ci([1, 2], [0, 0]))  # every resample divides by 0


def test_constant_values_give_a_point_interval() -> None:
    assert bootstrap_ci([0.75] * 20) == pytest.approx((0.75, 0.75))
    assert bootstrap_ci([3.0]) == (3.0, 3.0)
    # Each unit has ratio 1/2, so every resample's ratio of sums is exactly 1/2.
    assert bootstrap_ratio_ci([1, 2, 3], [2, 4, 6]) == pytest.approx((0.5, 0.5))


def test_matches_an_explicit_resampling_loop() -> None:
    values = np.random.default_rng(6).normal(size=30)
    rng = np.random.default_rng(11)
    means = [values[rng.integers(0, 30, size=30)].mean() for _ in range(200)]
    # One (200, 30) draw yields the same indices row by row as 200 draws of 30.
    assert bootstrap_ci(values, n_resamples=200, seed=11) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))


def test_is_deterministic_per_seed() -> None:
    values = np.random.default_rng(7).random(50)
    assert bootstrap_ci(values, seed=1) == bootstrap_ci(values, seed=1)
    assert bootstrap_ci(values, seed=1) != bootstrap_ci(values, seed=2)


def test_interval_brackets_the_estimate_and_narrows_with_confidence() -> None:
    values = np.random.default_rng(8).normal(loc=2.0, size=400)
    low, high = bootstrap_ci(values)
    narrow_low, narrow_high = bootstrap_ci(values, confidence=0.5)
    assert low < narrow_low < values.mean() < narrow_high < high
    # Normal theory width is 2 * 1.96 * sd / sqrt(n), about 0.196 here.
    assert high - low == pytest.approx(2 * 1.96 * values.std() / np.sqrt(400), rel=0.15)


def test_other_statistics_and_nan_dropping() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    low, high = bootstrap_ci(values, stat=np.median)
    assert 1.0 <= low <= high <= 100.0
    assert bootstrap_ci(np.append(values, np.nan), stat=np.median) == (low, high)


def test_large_input_is_resampled_in_batches() -> None:
    # 40,000 values x 1,000 resamples is more than one batch; the interval must still be sane.
    values = np.random.default_rng(9).random(40_000)
    low, high = bootstrap_ci(values, n_resamples=1000)
    assert low < values.mean() < high
    assert high - low == pytest.approx(2 * 1.96 * values.std() / 200, rel=0.15)


def test_ratio_equals_mean_ratio_for_equal_denominators() -> None:
    # With every denominator d, sum(num) / sum(den) = mean(num / d) on the same resampled indices.
    numerators = np.random.default_rng(10).integers(0, 7, size=60)
    expected = bootstrap_ci(numerators / 6, seed=3)
    assert bootstrap_ratio_ci(numerators, np.full(60, 6), seed=3) == pytest.approx(expected)


def test_ratio_ci_covers_pooled_agreement() -> None:
    rng = np.random.default_rng(12)
    comparable = rng.integers(1, 22, size=500)
    agree = rng.binomial(comparable, 0.73)
    low, high = bootstrap_ratio_ci(agree, comparable)
    assert low < agree.sum() / comparable.sum() < high
    assert high - low < 0.05


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0, 2.0], confidence=1.5)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci([1.0, 2.0], n_resamples=0)
    with pytest.raises(ValueError, match="differ in length"):
        bootstrap_ratio_ci([1, 2], [1])
