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
    pair_counts_batch,
    pairwise_agreement,
    pairwise_agreement_batch,
    peer_agreement,
    peer_agreement_batch,
    position_bias,
)


def random_rankings(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """(n, k) rank vectors with plenty of ties: each item lands in one of up to k buckets."""
    n_buckets = rng.integers(1, k + 1, size=(n, 1))
    return (rng.random((n, k)) * n_buckets).astype(np.int64)


def agreement_by_hand(a: np.ndarray, b: np.ndarray, *, peers: bool = False) -> tuple[float, int]:
    """(credit, pairs) by a plain loop: a against the reference b, or (peers) symmetric; a one-sided tie is 0.5."""
    credit, pairs = 0.0, 0
    for i, j in itertools.combinations(range(len(a)), 2):
        tied_a, tied_b = a[i] == a[j], b[i] == b[j]
        if tied_b and (tied_a or not peers):
            continue  # not counted: the reference ties it (or both peers do)
        pairs += 1
        if tied_a or tied_b:
            credit += 0.5
        else:
            credit += (a[i] < a[j]) == (b[i] < b[j])
    return credit, pairs


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


def test_pairwise_agreement_counts_a_tie_half_over_the_references_strict_pairs() -> None:
    # a = [0, 1, 2, 3] against the reference b = [1, 0, 2, 2]: (2,3) is tied by the reference -> not counted;
    # (0,1) reversed -> 0; (0,2) (0,3) (1,2) (1,3) same -> 4 of 5.
    assert pairwise_agreement([0, 1, 2, 3], [1, 0, 2, 2]) == pytest.approx(4 / 5)
    # a = [0, 0, 1, 2] against b = [0, 1, 1, 2]: (1,2) tied by the reference -> out; (0,1) tied by a -> 0.5;
    # the other 4 agree -> 4.5 / 5.
    assert pairwise_agreement([0, 0, 1, 2], [0, 1, 1, 2]) == pytest.approx(4.5 / 5)


def test_tying_everything_unsure_is_not_free() -> None:
    # The example: against a strict gold of 9, [0,1,1,1,1,1,1,1,1] agrees on 8 pairs and ties 28 -> 22/36.
    gold = np.arange(9)
    tie_happy = [0, 1, 1, 1, 1, 1, 1, 1, 1]
    assert pairwise_agreement(tie_happy, gold) == pytest.approx((8 + 0.5 * 28) / 36)
    assert pairwise_agreement(tie_happy, gold) < 0.75
    assert pairwise_agreement(np.zeros(9, dtype=int), gold) == 0.5  # tying everything = chance
    assert kendall_tau_b(tie_happy, gold) == pytest.approx(scipy_tau_b(np.array(tie_happy), gold))


def test_peer_agreement_counts_pairs_strict_in_either() -> None:
    # a = [0, 0, 1, 2], b = [0, 1, 1, 2]: (0,1) tied by a, (1,2) tied by b -> 0.5 each; 4 others agree: 5 / 6.
    assert peer_agreement([0, 0, 1, 2], [0, 1, 1, 2]) == pytest.approx(5 / 6)
    assert peer_agreement([0, 0, 1, 2], [0, 1, 1, 2]) == peer_agreement([0, 1, 1, 2], [0, 0, 1, 2])
    assert math.isnan(peer_agreement([0, 0, 0], [0, 0, 0]))  # both tie everything: nothing to score


def test_pair_counts_partition_the_pairs() -> None:
    rng = np.random.default_rng(5)
    A, B = random_rankings(rng, 500, 7), random_rankings(rng, 500, 7)
    c = pair_counts_batch(A, B)
    tied_both = np.array(
        [
            sum(a[i] == a[j] and b[i] == b[j] for i, j in itertools.combinations(range(7), 2))
            for a, b in zip(A, B, strict=True)
        ]
    )
    np.testing.assert_array_equal(c.concordant + c.discordant + c.tied_a + c.tied_b + tied_both, 21)


def test_pairwise_agreement_edge_cases() -> None:
    assert pairwise_agreement([0, 1], [0, 1]) == 1.0  # K = 2
    assert pairwise_agreement([0, 1], [1, 0]) == 0.0
    assert pairwise_agreement([0, 0, 0], [0, 1, 2]) == 0.5  # all ties against a strict reference: half credit
    assert math.isnan(pairwise_agreement([0, 1, 2], [0, 0, 0]))  # the reference orders nothing
    assert math.isnan(pairwise_agreement([0], [0]))  # K = 1: no pairs


@pytest.mark.parametrize("peers", [False, True])
def test_agreement_batch_matches_hand_loop(peers: bool) -> None:
    rng = np.random.default_rng(1)
    batch = peer_agreement_batch if peers else pairwise_agreement_batch
    for k in range(2, 10):
        A, B = random_rankings(rng, 200, k), random_rankings(rng, 200, k)
        credit, pairs = batch(A, B, chunk_rows=7)  # several chunks
        expected = np.array([agreement_by_hand(a, b, peers=peers) for a, b in zip(A, B, strict=True)])
        np.testing.assert_array_equal(credit, expected[:, 0])
        np.testing.assert_array_equal(pairs, expected[:, 1])


def test_pairwise_agreement_batch_handles_wide_rank_values() -> None:
    # Values spanning more than int8 (and negative ones) take the int64 path; only order matters.
    rng = np.random.default_rng(2)
    A, B = random_rankings(rng, 300, 6), random_rankings(rng, 300, 6)
    wide_A, wide_B = A * 1000 - 500, B * 1000 - 500
    for got, want in zip(pairwise_agreement_batch(wide_A, wide_B), pairwise_agreement_batch(A, B), strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int8])
def test_small_integer_types_do_not_wrap(dtype: type) -> None:
    # uint8 differences used to wrap: [0,200,1,2] against [200,0,1,2] scored 1.0; the truth is 1/6.
    a, b = np.array([[0, 200, 1, 2]]), np.array([[200, 0, 1, 2]])
    if dtype is np.int8:
        a, b = a - 100, b - 100  # int8 values spanning more than 127
    credit, pairs = pairwise_agreement_batch(a.astype(dtype), b.astype(dtype))
    assert credit[0] / pairs[0] == pytest.approx(1 / 6)
    assert kendall_tau_b_batch(a.astype(dtype), b.astype(dtype))[0] == pytest.approx(scipy_tau_b(a[0], b[0]))


def test_pairwise_agreement_is_half_tau_plus_half_without_ties() -> None:
    # Strict rankings: C + D = all pairs, so agreement = C / (C + D) = (tau + 1) / 2.
    rng = np.random.default_rng(3)
    A = np.argsort(rng.random((100, 7)), axis=1)
    B = np.argsort(rng.random((100, 7)), axis=1)
    for batch in (pairwise_agreement_batch, peer_agreement_batch):
        credit, pairs = batch(A, B)
        np.testing.assert_allclose(credit / pairs, (kendall_tau_b_batch(A, B) + 1) / 2)


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
