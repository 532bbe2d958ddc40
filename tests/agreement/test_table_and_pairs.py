"""The columnar ranking helpers against the one-ranking-at-a-time reference (metrics.buckets_to_ranks)."""

import json
import random

import numpy as np
import pytest

from app import metrics
from app.services.agreement.pairs import pair_indexes, score_pairs
from app.services.agreement.table import bucket_ranks, flatten_buckets, parse_bucket_texts


def _reference(buckets, item_ids):
    try:
        return metrics.buckets_to_ranks(buckets, item_ids)
    except ValueError:
        return None


CASES = [
    ([[10], [20, 30]], [10, 20, 30]),  # a tie
    ([[30], [], [10, 20]], [10, 20, 30]),  # an empty bucket still counts as a bucket
    ([[10], [20]], [10, 20, 30]),  # missing item
    ([[10], [20], [30], [40]], [10, 20, 30]),  # unknown item
    ([[10, 10], [20, 30]], [10, 20, 30]),  # repeated item
    ([[1234567], [7]], [7, 1234567]),  # multi-digit ids
    ([[5], [6]], [5, 5]),  # a task listing one completion twice
    ([[3], [1], [2], [4], [0]], [0, 1, 2, 3, 4]),
]


def test_bucket_ranks_matches_buckets_to_ranks_row_by_row():
    buckets, item_ids = [c[0] for c in CASES], [c[1] for c in CASES]
    ranks, valid = bucket_ranks(*flatten_buckets(buckets), item_ids)
    assert ranks.shape == (len(CASES), 5)
    for n, (b, items) in enumerate(CASES):
        expected = _reference(b, items)
        assert valid[n] == (expected is not None)
        if expected is not None:
            np.testing.assert_array_equal(ranks[n, : len(items)], expected)
        else:
            assert (ranks[n] == -1).all()


def test_parse_bucket_texts_equals_json_then_flatten():
    rng = random.Random(3)
    buckets = [[[rng.randrange(10 ** rng.randrange(1, 7)) for _ in range(rng.randrange(0, 3))] for _ in range(4)]]
    buckets += [c[0] for c in CASES] + [[]]
    texts = [json.dumps(b, separators=rng.choice([(",", ":"), (", ", ": ")])) for b in buckets]
    for got, want in zip(parse_bucket_texts(texts), flatten_buckets(buckets), strict=True):
        np.testing.assert_array_equal(got, want)


def test_parse_bucket_texts_falls_back_to_json_for_other_values():
    row, bucket, item = parse_bucket_texts(["[[1], [2]]", '[["3"]]'])
    np.testing.assert_array_equal(row, [0, 0, 1])
    np.testing.assert_array_equal(bucket, [0, 1, 0])
    assert item.tolist() == [1, 2, -1]  # a string is never a completion id


@pytest.mark.parametrize("n", [0, 1])
def test_parse_bucket_texts_with_no_items(n):
    assert all(a.size == 0 for a in parse_bucket_texts(["[]"] * n))


def test_pair_indexes_pairs_rows_of_one_group_by_different_users():
    group = np.array([1, 1, 1, 2, 3, 3])
    user = np.array([7, 8, 7, 7, 7, 9])
    i, j = pair_indexes(group, user)
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == [(0, 1), (1, 2), (4, 5)]


def test_score_pairs_batches_per_k():
    ranks = np.array([[0, 1, 2], [2, 1, 0], [0, 0, 1], [0, 1, -1], [0, 1, -1]])
    k = np.array([3, 3, 3, 2, 2])
    pairs = score_pairs(ranks, k, np.array([0, 0, 3]), np.array([1, 2, 4]))
    for n, (a, b, s) in enumerate(((0, 1, 3), (0, 2, 3), (3, 4, 2))):
        want = metrics.pair_counts_batch(ranks[[a], :s], ranks[[b], :s])
        got = (pairs.concordant, pairs.discordant, pairs.tied_i, pairs.tied_j)
        assert [int(x[n]) for x in got] == [int(w[0]) for w in want]
    # ranking 0 = [0,1,2] against ranking 2 = [0,0,1]: (0,1) tied by 2 -> as reference, not counted; as peers 0.5
    credit, counted, tied = pairs.against(np.array([True, True, True]))
    assert (credit[1], counted[1], tied[1]) == (2.0, 2, 0)
    credit, counted, tied = pairs.against(np.array([False, False, False]))
    assert (credit[1], counted[1], tied[1]) == (2.5, 3, 1)
    peer_credit, peer_counted = pairs.peers()
    assert (peer_credit[1], peer_counted[1]) == (2.5, 3)


def test_helpers_accept_no_rankings():
    none = np.zeros(0, dtype=np.int64)
    assert all(a.size == 0 for a in pair_indexes(none, none))
    ranks, valid = bucket_ranks(none, none, none, [])
    assert ranks.shape == (0, 0) and valid.size == 0
    pairs = score_pairs(np.zeros((0, 0), dtype=np.int64), none, none, none)
    assert pairs.i.size == pairs.concordant.size == pairs.tied_j.size == 0
