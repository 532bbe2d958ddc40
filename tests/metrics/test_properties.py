"""Hypothesis properties of ranking validation and the agreement metrics: bounds, symmetry, identity.

The hand-worked examples sit beside this file; here every ranking of up to 7 outputs (ties included) is fair game.
Bounded and derandomized so that the file runs in a few seconds and the same way in CI.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import InvalidInput
from app.metrics import cohen_kappa, krippendorff_alpha, percent_agreement, ranking_alpha
from app.metrics.ranking import (
    buckets_to_ranks,
    kendall_tau_b,
    kendall_tau_b_batch,
    pairwise_agreement,
    pairwise_agreement_batch,
    peer_agreement,
)
from app.metrics.reliability import ranking_alpha_grouped
from app.services.rankings import RankingSubmission, check_buckets, check_submission

settings.register_profile("properties", max_examples=100, deadline=None, derandomize=True)
PROPERTIES = settings.get_profile("properties")


@st.composite
def bucketings(draw: st.DrawFn, min_k: int = 2, max_k: int = 7) -> tuple[list[int], list[list[int]]]:
    """(the task's completion ids, a valid ranking of them: non-empty buckets, best first, ties inside one)."""
    ids = draw(st.lists(st.integers(1, 10**9), min_size=min_k, max_size=max_k, unique=True))
    order = draw(st.permutations(ids))
    cuts = draw(st.sets(st.integers(1, len(ids) - 1))) if len(ids) > 1 else set()
    edges = [0, *sorted(cuts), len(ids)]
    return ids, [list(order[a:b]) for a, b in zip(edges, edges[1:], strict=False)]


def rank_pairs(k_min: int = 2, k_max: int = 7) -> st.SearchStrategy[tuple[np.ndarray, np.ndarray]]:
    """Two rank vectors of the same length (ties and gaps allowed)."""
    return st.integers(k_min, k_max).flatmap(
        lambda k: st.tuples(
            st.lists(st.integers(0, k - 1), min_size=k, max_size=k).map(np.array),
            st.lists(st.integers(0, k - 1), min_size=k, max_size=k).map(np.array),
        )
    )


def has_strict_pair(rank: np.ndarray) -> bool:
    return len(set(rank.tolist())) > 1


# --- ranking validation ---


@PROPERTIES
@given(bucketings())
def test_every_partition_of_the_outputs_is_a_valid_ranking(case: tuple[list[int], list[list[int]]]) -> None:
    ids, buckets = case
    check_buckets(buckets, ids, not_rankable=False)
    check_submission(RankingSubmission(ranking=buckets, idempotency_key="k", ratings={ids[0]: 7}), ids)
    ranks = buckets_to_ranks(buckets, ids)
    position = {cid: i for i, cid in enumerate(ids)}
    for b, bucket in enumerate(buckets):
        assert all(ranks[position[cid]] == b for cid in bucket)


@PROPERTIES
@given(bucketings(), st.data())
def test_a_ranking_that_drops_repeats_or_invents_an_output_is_refused(
    case: tuple[list[int], list[list[int]]], data: st.DataObject
) -> None:
    ids, buckets = case
    bucket = data.draw(st.integers(0, len(buckets) - 1))
    change = data.draw(st.sampled_from(["drop", "repeat", "invent", "empty bucket"]))
    bad = [list(b) for b in buckets]
    named: int | None = None
    if change == "drop":
        named = bad[bucket].pop()
        bad = [b for b in bad if b]
    elif change == "repeat":
        named = data.draw(st.sampled_from(ids))
        bad[bucket].append(named)
    elif change == "invent":
        named = data.draw(st.integers(1, 10**9).filter(lambda i: i not in ids))
        bad[bucket].append(named)
    else:
        bad.insert(bucket, [])
    with pytest.raises(InvalidInput) as refused:
        check_buckets(bad, ids, not_rankable=False)
    if named is not None:
        assert str(named) in refused.value.message


@PROPERTIES
@given(bucketings(), st.integers(-(10**6), 10**6).filter(lambda r: not 1 <= r <= 7))
def test_ratings_outside_one_to_seven_are_refused(case: tuple[list[int], list[list[int]]], rating: int) -> None:
    ids, buckets = case
    with pytest.raises(InvalidInput, match="ratings must be whole numbers"):
        check_submission(RankingSubmission(ranking=buckets, idempotency_key="k", ratings={ids[0]: rating}), ids)


# --- agreement between two rankings ---


@PROPERTIES
@given(rank_pairs())
def test_pair_metrics_are_bounded(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    tau, against, peers = kendall_tau_b(a, b), pairwise_agreement(a, b), peer_agreement(a, b)
    assert math.isnan(tau) == (not has_strict_pair(a) or not has_strict_pair(b))
    assert math.isnan(tau) or -1 - 1e-12 <= tau <= 1 + 1e-12
    assert math.isnan(against) == (not has_strict_pair(b))
    assert math.isnan(against) or 0 <= against <= 1
    assert math.isnan(peers) == (not has_strict_pair(a) and not has_strict_pair(b))
    assert math.isnan(peers) or 0 <= peers <= 1


@PROPERTIES
@given(rank_pairs())
def test_peer_metrics_are_symmetric(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    np.testing.assert_equal(kendall_tau_b(a, b), kendall_tau_b(b, a))
    np.testing.assert_equal(peer_agreement(a, b), peer_agreement(b, a))


@PROPERTIES
@given(rank_pairs())
def test_identity_and_reversal(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, _ = pair
    if not has_strict_pair(a):
        return
    assert kendall_tau_b(a, a) == pytest.approx(1.0)
    assert pairwise_agreement(a, a) == 1.0
    assert peer_agreement(a, a) == 1.0
    assert kendall_tau_b(a, -a) == pytest.approx(-1.0)
    assert pairwise_agreement(-a, a) == 0.0


@PROPERTIES
@given(rank_pairs(), st.integers(1, 5), st.integers(-3, 3))
def test_only_the_order_of_ranks_matters(pair: tuple[np.ndarray, np.ndarray], scale: int, shift: int) -> None:
    a, b = pair
    moved = a * scale + shift
    np.testing.assert_equal(kendall_tau_b(moved, b), kendall_tau_b(a, b))
    np.testing.assert_equal(pairwise_agreement(moved, b), pairwise_agreement(a, b))


@PROPERTIES
@given(st.integers(2, 7).flatmap(lambda k: st.tuples(st.permutations(range(k)), st.permutations(range(k)))))
def test_without_ties_agreement_is_tau_rescaled(pair: tuple[list[int], list[int]]) -> None:
    a, b = np.array(pair[0]), np.array(pair[1])
    expected = (kendall_tau_b(a, b) + 1) / 2
    assert pairwise_agreement(a, b) == pytest.approx(expected)
    assert peer_agreement(a, b) == pytest.approx(expected)


@PROPERTIES
@given(st.lists(rank_pairs(4, 4), min_size=1, max_size=6))
def test_batches_equal_their_rows(rows: list[tuple[np.ndarray, np.ndarray]]) -> None:
    A, B = np.stack([a for a, _ in rows]), np.stack([b for _, b in rows])
    np.testing.assert_allclose(kendall_tau_b_batch(A, B, chunk_rows=2), [kendall_tau_b(a, b) for a, b in rows])
    credit, pairs = pairwise_agreement_batch(A, B, chunk_rows=3)
    for (a, b), c, p in zip(rows, credit, pairs, strict=True):
        np.testing.assert_equal(c / p if p else float("nan"), pairwise_agreement(a, b))


# --- reliability over many labelers ---


def labelers_by_items(max_labelers: int = 5) -> st.SearchStrategy[np.ndarray]:
    """(n_labelers, K) rank vectors of the same K outputs."""
    return st.tuples(st.integers(2, max_labelers), st.integers(2, 6)).flatmap(
        lambda shape: st.lists(
            st.lists(st.integers(0, shape[1] - 1), min_size=shape[1], max_size=shape[1]),
            min_size=shape[0],
            max_size=shape[0],
        ).map(np.array)
    )


@PROPERTIES
@given(labelers_by_items(), st.randoms(use_true_random=False))
def test_alpha_is_at_most_one_and_ignores_the_order_of_labelers_and_items(R: np.ndarray, rng) -> None:  # type: ignore[no-untyped-def]
    alpha = ranking_alpha(R)
    assert math.isnan(alpha) or alpha <= 1 + 1e-9
    labelers, items = list(range(R.shape[0])), list(range(R.shape[1]))
    rng.shuffle(labelers)
    rng.shuffle(items)
    np.testing.assert_allclose(ranking_alpha(R[labelers][:, items]), alpha, rtol=1e-9, atol=1e-12)


@PROPERTIES
@given(labelers_by_items())
def test_alpha_of_identical_labelers_is_one(R: np.ndarray) -> None:
    same = np.repeat(R[:1], R.shape[0], axis=0)
    if has_strict_pair(R[0]):
        assert ranking_alpha(same) == pytest.approx(1.0)
    else:
        assert math.isnan(ranking_alpha(same))


@PROPERTIES
@given(st.lists(labelers_by_items(4).filter(lambda R: R.shape[1] == 4), min_size=1, max_size=4))
def test_grouped_alpha_equals_alpha_per_task(tasks: list[np.ndarray]) -> None:
    ranks = np.concatenate(tasks)
    group = np.concatenate([np.full(len(R), g) for g, R in enumerate(tasks)])
    grouped = ranking_alpha_grouped(ranks, group, len(tasks))
    np.testing.assert_allclose(grouped, [ranking_alpha(R) for R in tasks], rtol=1e-9, atol=1e-12)


@PROPERTIES
@given(labelers_by_items())
def test_alpha_with_a_missing_value_stays_bounded(R: np.ndarray) -> None:
    with_gap = R.astype(np.float64)
    with_gap[0, 0] = np.nan
    alpha = krippendorff_alpha(with_gap)
    assert math.isnan(alpha) or alpha <= 1 + 1e-9


@PROPERTIES
@given(
    st.integers(1, 30).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(0, 2), min_size=n, max_size=n), st.lists(st.integers(0, 2), min_size=n, max_size=n)
        )
    )
)
def test_kappa_and_percent_agreement(pair: tuple[list[int], list[int]]) -> None:
    x, y = pair
    kappa, share = cohen_kappa(x, y), percent_agreement(x, y)
    assert -1 - 1e-12 <= kappa <= 1 + 1e-12
    assert 0 <= share <= 1
    assert cohen_kappa(y, x) == pytest.approx(kappa)
    assert percent_agreement(y, x) == share
    assert cohen_kappa(x, x) == 1.0 and percent_agreement(x, x) == 1.0
    assert kappa <= share + 1e-12 or share == 1.0
