"""Bradley-Terry ratings: the MM fit is the likelihood maximum (checked against scipy) and recovers known strengths."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from app.metrics.preference import bradley_terry, win_probability


def _neg_log_likelihood(theta: np.ndarray, wins: np.ndarray) -> float:
    diff = theta[:, None] - theta[None, :]
    return float(-(wins * -np.logaddexp(0.0, -diff)).sum())


@pytest.mark.parametrize("seed", range(5))
def test_mm_fit_is_the_maximum_likelihood(seed):
    rng = np.random.default_rng(seed)
    m = rng.integers(2, 6)
    wins = rng.integers(1, 20, size=(m, m)).astype(float)
    np.fill_diagonal(wins, 0)
    ratings = bradley_terry(wins, prior=0.0)
    best = minimize(_neg_log_likelihood, np.zeros(m), args=(wins,), method="BFGS", options={"gtol": 1e-10})
    expected = best.x * 400 / np.log(10)
    np.testing.assert_allclose(ratings, expected - expected.mean(), atol=1e-3)


def test_recovers_known_strengths_from_many_games():
    truth = np.array([0.0, 100.0, 300.0])
    rng = np.random.default_rng(1)
    wins = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            if i != j:
                wins[i, j] = rng.binomial(20_000, win_probability(truth[i], truth[j]))
    ratings = bradley_terry(wins)
    np.testing.assert_allclose(ratings - ratings[0], truth - truth[0], atol=8)


def test_symmetry_ties_and_clean_sweeps():
    assert bradley_terry([[0, 5], [5, 0]]) == pytest.approx([0.0, 0.0])
    swept = bradley_terry([[0, 10], [0, 0]])
    assert np.isfinite(swept).all() and swept[0] > swept[1]
    assert win_probability(100, 100) == 0.5 and win_probability(400, 0) == pytest.approx(10 / 11)
    with pytest.raises(ValueError, match="square"):
        bradley_terry([[1, 2, 3]])
