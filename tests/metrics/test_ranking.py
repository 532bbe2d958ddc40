import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import stats

from app.metrics import (
    buckets_to_ranks,
    kendall_tau_b,
    kendall_tau_b_batch,
    pairwise_agreement,
    pairwise_agreement_batch,
    position_bias,
)


def random_rankings(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """(n, k) rank vectors with plenty of ties: each item lands in one of up to k buckets."""
    n_buckets = rng.integers(1, k + 1, size=(n, 1))
    return (rng.random((n, k)) * n_buckets).astype(np.int64)


def agreement_counts_by_hand(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    agree = comparable = 0
    for i, j in itertools.combinations(range(len(a)), 2):
        if a[i] != a[j] and b[i] != b[j]:
            comparable += 1
            agree += (a[i] < a[j]) == (b[i] < b[j])
    return agree, comparable


def scipy_tau_b(a: np.ndarray, b: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on constant input before returning nan
        return float(stats.kendalltau(a, b).statistic)


# --- buckets_to_ranks ---


def test_buckets_to_ranks_aligns_to_item_ids() -> None:
    # Buckets best first: {30} first, then {10, 20} tied -> item 10: 1, item 20: 1, item 30: 0.
    ranks = buckets_to_ranks([[30], [10, 20]], [10, 20, 30])
    np.testing.assert_array_equal(ranks, [1, 1, 0])
    assert ranks.dtype == np.int64


@pytest.mark.parametrize(
    ("buckets", "item_ids", "message"),
    [
        ([[1], [2]], [1, 2, 3], "missing"),
        ([[1, 2], [2, 3]], [1, 2, 3], "more than once"),
        ([[1], [2, 4]], [1, 2], "unknown item id 4"),
        ([[1], [2]], [1, 2, 2], "duplicates"),
    ],
)
def test_buckets_to_ranks_rejects_bad_buckets(buckets: list[list[int]], item_ids: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        buckets_to_ranks(buckets, item_ids)


# --- pairwise agreement ---


def test_pairwise_agreement_one_swap() -> None:
    # a orders 0<1<2<3; b swaps items 1 and 2. All 6 pairs are strict in both, only (1, 2) differs: 5/6.
    assert pairwise_agreement([0, 1, 2, 3], [0, 2, 1, 3]) == pytest.approx(5 / 6)


def test_pairwise_agreement_excludes_pairs_tied_in_either() -> None:
    # a = [0, 1, 2, 3], b = [1, 0, 2, 2]:
    # (0,1) a: 0 first, b: 1 first -> disagree; (0,2) (0,3) (1,2) (1,3) agree; (2,3) tied in b -> excluded.
    # 4 agree / 5 comparable.
    assert pairwise_agreement([0, 1, 2, 3], [1, 0, 2, 2]) == pytest.approx(4 / 5)
    # a = [0, 0, 1, 2], b = [0, 1, 1, 2]: (0,1) tied in a, (1,2) tied in b; the other 4 agree -> 4/4.
    assert pairwise_agreement([0, 0, 1, 2], [0, 1, 1, 2]) == 1.0


def test_pairwise_agreement_edge_cases() -> None:
    assert pairwise_agreement([0, 1], [0, 1]) == 1.0  # K = 2
    assert pairwise_agreement([0, 1], [1, 0]) == 0.0
    assert math.isnan(pairwise_agreement([0, 0, 0], [0, 1, 2]))  # all ties: nothing comparable
    assert math.isnan(pairwise_agreement([0], [0]))  # K = 1: no pairs


def test_pairwise_agreement_batch_matches_hand_loop() -> None:
    rng = np.random.default_rng(1)
    for k in range(2, 10):
        A, B = random_rankings(rng, 200, k), random_rankings(rng, 200, k)
        agree, comparable = pairwise_agreement_batch(A, B, chunk_rows=7)  # several chunks
        expected = np.array([agreement_counts_by_hand(a, b) for a, b in zip(A, B, strict=True)])
        np.testing.assert_array_equal(agree, expected[:, 0])
        np.testing.assert_array_equal(comparable, expected[:, 1])


def test_pairwise_agreement_batch_handles_wide_rank_values() -> None:
    # Values spanning more than int8 (and negative ones) take the int64 path; only order matters.
    rng = np.random.default_rng(2)
    A, B = random_rankings(rng, 300, 6), random_rankings(rng, 300, 6)
    wide_A, wide_B = A * 1000 - 500, B * 1000 - 500
    for got, want in zip(pairwise_agreement_batch(wide_A, wide_B), pairwise_agreement_batch(A, B), strict=True):
        np.testing.assert_array_equal(got, want)


def test_pairwise_agreement_is_half_tau_plus_half_without_ties() -> None:
    # Strict rankings: C + D = all pairs, so agreement = C / (C + D) = (tau + 1) / 2.
    rng = np.random.default_rng(3)
    A = np.argsort(rng.random((100, 7)), axis=1)
    B = np.argsort(rng.random((100, 7)), axis=1)
    agree, comparable = pairwise_agreement_batch(A, B)
    np.testing.assert_allclose(agree / comparable, (kendall_tau_b_batch(A, B) + 1) / 2)


def test_batch_functions_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="same shape"):
        pairwise_agreement_batch(np.zeros((2, 3), int), np.zeros((2, 4), int))
    with pytest.raises(ValueError, match="integers"):
        pairwise_agreement_batch(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="same length"):
        pairwise_agreement([0, 1], [0, 1, 2])
    with pytest.raises(ValueError, match="chunk_rows"):
        kendall_tau_b_batch(np.zeros((2, 3), int), np.zeros((2, 3), int), chunk_rows=0)


def test_empty_batch() -> None:
    agree, comparable = pairwise_agreement_batch(np.zeros((0, 5), int), np.zeros((0, 5), int))
    assert agree.shape == comparable.shape == (0,)
    assert kendall_tau_b_batch(np.zeros((0, 5), int), np.zeros((0, 5), int)).shape == (0,)


# --- Kendall tau-b ---


def test_kendall_tau_b_hand_cases() -> None:
    # One swap among 4 strict items: C = 5, D = 1, no ties -> (5 - 1) / 6.
    assert kendall_tau_b([0, 1, 2, 3], [0, 2, 1, 3]) == pytest.approx(2 / 3)
    # a = [0, 0, 1, 2], b = [0, 1, 1, 2]: n0 = 6 pairs, one tied in a, one tied in b; C = 4, D = 0.
    # tau_b = 4 / sqrt((6 - 1) * (6 - 1)) = 0.8.
    assert kendall_tau_b([0, 0, 1, 2], [0, 1, 1, 2]) == pytest.approx(0.8)
    assert kendall_tau_b([0, 1], [1, 0]) == -1.0  # K = 2
    assert math.isnan(kendall_tau_b([1, 1, 1], [0, 1, 2]))  # all ties in a


def test_kendall_tau_b_matches_scipy_with_ties() -> None:
    rng = np.random.default_rng(4)
    for k in range(2, 10):
        A, B = random_rankings(rng, 150, k), random_rankings(rng, 150, k)
        batch = kendall_tau_b_batch(A, B, chunk_rows=16)
        for a, b, tau in zip(A, B, batch, strict=True):
            expected = scipy_tau_b(a, b)
            np.testing.assert_allclose(kendall_tau_b(a, b), expected, rtol=1e-12, atol=1e-12, equal_nan=True)
            np.testing.assert_allclose(tau, expected, rtol=1e-12, atol=1e-12, equal_nan=True)


# --- position bias ---


def test_position_bias_hand_case() -> None:
    # First-shown won 2 of 4; chance = mean(1/2, 1/2, 1/4, 1/4) = 0.375.
    bias = position_bias(np.array([True, False, True, False]), np.array([2, 2, 4, 4]))
    assert bias.observed_rate == 0.5
    assert bias.chance_rate == pytest.approx(0.375)
    assert bias.n == 4
    observed, chance, n = bias  # unpacks like a plain tuple
    assert (observed, n) == (0.5, 4)


def test_position_bias_edge_cases() -> None:
    empty = position_bias(np.array([], dtype=bool), np.array([], dtype=int))
    assert math.isnan(empty.observed_rate) and math.isnan(empty.chance_rate) and empty.n == 0
    with pytest.raises(ValueError, match="k >= 1"):
        position_bias(np.array([True]), np.array([0]))
    with pytest.raises(ValueError, match="same length"):
        position_bias(np.array([True, False]), np.array([2]))
