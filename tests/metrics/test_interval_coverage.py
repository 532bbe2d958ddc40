"""Coverage of the pooled-agreement interval, measured by simulation (vectorised; a few seconds).

Simulated labelers rank K outputs by gold utility plus Gumbel noise at a temperature (Plackett-Luce), some tying
neighbours they perceive as close, with a per-task difficulty so that rankings differ in how hard they are (pairs
within one ranking are correlated, as in real data). A labeler's true agreement is the expected pooled figure,
E[credit] / E[pairs], taken from a large sample. The interval over n of their rankings must cover it at least 90% of
the time (95% nominal) at n = 3, 10 and 30.
"""

from typing import NamedTuple

import numpy as np
import pytest

from app.metrics import pairwise_agreement_batch, ratio_interval, ratio_interval_from_sums

LABELERS = 1000
"""Simulated labelers per (profile, n): a coverage of 0.95 is then measured to about +/- 0.007."""


class Profile(NamedTuple):
    k: int
    temperature: float
    tie_margin: float = 0.0
    difficulty_sd: float = 0.5
    """sd of the log of a per-task factor on the temperature."""


PROFILES = {
    "careful K=4": Profile(4, 0.25),
    "careful K=9": Profile(9, 0.25),
    "near perfect K=4": Profile(4, 0.08),
    "noisy K=6": Profile(6, 1.0),
    "tie-happy K=5": Profile(5, 0.5, tie_margin=0.75),
    "random K=4": Profile(4, 1e6),
    "hard tasks K=7": Profile(7, 0.4, difficulty_sd=1.2),
}


def _rankings(p: Profile, rows: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(credit, pairs) of `rows` simulated rankings against a strict gold order."""
    gold = rng.normal(size=(rows, p.k))  # (R, K) utilities; higher is better
    temperature = p.temperature * np.exp(p.difficulty_sd * rng.normal(size=(rows, 1)))
    perceived = gold + temperature * rng.gumbel(size=(rows, p.k))
    order = np.argsort(-perceived, axis=1)
    ordered = np.take_along_axis(perceived, order, axis=1)
    new_bucket = np.c_[np.zeros((rows, 1), bool), (ordered[:, :-1] - ordered[:, 1:]) > p.tie_margin]
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.cumsum(new_bucket, axis=1), axis=1)
    gold_ranks = np.argsort(np.argsort(-gold, axis=1), axis=1)
    return pairwise_agreement_batch(ranks, gold_ranks)


def _coverage(p: Profile, n: int, truth: float, rng: np.random.Generator) -> float:
    credit, pairs = (x.reshape(LABELERS, n) for x in _rankings(p, LABELERS * n, rng))
    y, m = credit.astype(np.float64), pairs.astype(np.float64)
    low, high = ratio_interval_from_sums(
        np.full(LABELERS, n), y.sum(1), m.sum(1), (y * y).sum(1), (y * m).sum(1), (m * m).sum(1)
    )
    return float(np.mean((low <= truth) & (truth <= high)))


@pytest.fixture(scope="module")
def truths() -> dict[str, float]:
    rng = np.random.default_rng(2024)
    out = {}
    for name, p in PROFILES.items():
        credit, pairs = _rankings(p, 200_000, rng)
        out[name] = float(credit.sum() / pairs.sum())
    return out


@pytest.mark.parametrize("n", [3, 10, 30])
def test_interval_covers_the_true_agreement_at_least_90_percent(n: int, truths: dict[str, float]) -> None:
    rng = np.random.default_rng(n)
    coverage = {name: _coverage(p, n, truths[name], rng) for name, p in PROFILES.items()}
    assert min(coverage.values()) >= 0.90, coverage


def test_interval_matches_its_vectorised_form_and_has_no_width_below_the_minimum() -> None:
    y, m = np.array([5.0, 6.0, 2.5, 6.0]), np.array([6.0, 6.0, 6.0, 6.0])
    low, high = ratio_interval(y, m)
    vec = ratio_interval_from_sums(4, y.sum(), m.sum(), y @ y, y @ m, m @ m)
    assert (low, high) == (float(vec[0]), float(vec[1]))
    assert 0 < low < y.sum() / m.sum() < high < 1
    assert all(np.isnan(ratio_interval([5.0, 6.0], [6.0, 6.0])))  # 2 rankings: too few for an interval
    assert all(np.isnan(ratio_interval([6.0], [6.0])))
    perfect = ratio_interval([6.0] * 3, [6.0] * 3)
    assert perfect[1] == 1.0 and perfect[0] < 0.9  # three perfect rankings of 4: not a zero-width interval


def test_t_quantile_is_close_to_scipy() -> None:
    from scipy import stats

    from app.metrics import t_quantile

    for df in (1, 2, 3, 4, 5, 9, 29, 200):
        for q in (0.9, 0.95, 0.975):  # the interval's levels (95% two-sided uses 0.975)
            assert float(t_quantile(q, df)) == pytest.approx(stats.t.ppf(q, df), abs=0.005)
