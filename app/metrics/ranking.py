"""Agreement between rankings of the same items, over single rank vectors and (N, K) batches.

A ranking of K items is a rank vector of length K: ``rank[i]`` is the bucket index of item i
(0 = best); equal values are ties. Batched functions take (N, K) arrays, one ranking per row,
and compare row n of ``A`` with row n of ``B`` (e.g. a labeler's rankings against the gold ones).

All pair statistics come from the sign matrix ``s[n, i, j] = sign(rank[n, i] - rank[n, j])``,
kept only on its upper triangle i < j, so a batch becomes an (N, P) array with P = K (K - 1) / 2.

Pairwise agreement gives a tie half credit, so that tying an uncertain pair is never free:

* against a reference (a researcher's gold ranking), over the pairs the reference orders strictly:
  same order 1, tied by the ranking 0.5, reversed 0 (``pairwise_agreement_batch``);
* between two peers, over the pairs at least one of them orders strictly: same order 1, tied by one of
  them 0.5, reversed 0 (``peer_agreement_batch``).

Without ties both equal InstructGPT's "agreement rate", the share of pairwise comparisons on which two
people agree, and ``(tau + 1) / 2``.
"""

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

# Rows per chunk: a chunk holds a few (rows, P) int8 arrays, about 2 MB each at K = 9.
DEFAULT_CHUNK_ROWS = 1 << 16


def buckets_to_ranks(buckets: Sequence[Sequence[int]], item_ids: Sequence[int]) -> npt.NDArray[np.int64]:
    """Turn buckets of item ids (best first) into a rank vector aligned to ``item_ids``."""
    position = {item_id: i for i, item_id in enumerate(item_ids)}
    if len(position) != len(item_ids):
        raise ValueError(f"item_ids contains duplicates: {list(item_ids)}")
    ranks = np.full(len(item_ids), -1, dtype=np.int64)
    for bucket_index, bucket in enumerate(buckets):
        for item_id in bucket:
            if item_id not in position:
                raise ValueError(
                    f"unknown item id {item_id} in bucket {bucket_index}; expected one of {list(item_ids)}"
                )
            if ranks[position[item_id]] != -1:
                raise ValueError(f"item id {item_id} appears more than once in the buckets")
            ranks[position[item_id]] = bucket_index
    missing = [item_id for item_id, i in position.items() if ranks[i] == -1]
    if missing:
        raise ValueError(f"item ids {missing} are missing from the buckets")
    return ranks


def _as_rank_batch(A: npt.ArrayLike, B: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    A_arr, B_arr = np.asarray(A), np.asarray(B)
    if A_arr.ndim != 2 or A_arr.shape != B_arr.shape:
        raise ValueError(f"expected two (N, K) arrays of the same shape, got {A_arr.shape} and {B_arr.shape}")
    for arr in (A_arr, B_arr):
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"rank vectors must hold integers, got dtype {arr.dtype}")
    # Signed 64-bit on the way in: differences of uint8 (or of int8 spanning over 127) would wrap around.
    return A_arr.astype(np.int64, copy=False), B_arr.astype(np.int64, copy=False)


def _as_rank_pair(a: npt.ArrayLike, b: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a_arr, b_arr = np.asarray(a), np.asarray(b)
    if a_arr.ndim != 1 or a_arr.shape != b_arr.shape:
        raise ValueError(f"expected two rank vectors of the same length, got {a_arr.shape} and {b_arr.shape}")
    return a_arr[None, :], b_arr[None, :]


def _pair_signs(A: np.ndarray, B: np.ndarray, chunk_rows: int) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """Yield (row slice, sign_a, sign_b), each sign array (rows, P) int8 in {-1, 0, 1}."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    n, k = A.shape
    iu, ju = np.triu_indices(k, 1)  # (P,), (P,)
    lo = int(min(A.min(), B.min())) if A.size else 0
    hi = int(max(A.max(), B.max())) if A.size else 0
    # Shifted ranks in [0, 127] fit int8 and so do their differences; otherwise stay in int64.
    small = hi - lo <= 127
    for start in range(0, n, chunk_rows):
        rows = slice(start, min(start + chunk_rows, n))
        a, b = A[rows], B[rows]  # (rows, K)
        if small:
            a, b = (a - lo).astype(np.int8), (b - lo).astype(np.int8)
        sign_a = np.sign(a[:, iu] - a[:, ju]).astype(np.int8, copy=False)  # (rows, P)
        sign_b = np.sign(b[:, iu] - b[:, ju]).astype(np.int8, copy=False)  # (rows, P)
        yield rows, sign_a, sign_b


class PairCounts(NamedTuple):
    """Per row of two (N, K) rank arrays A and B: how their item pairs compare, each (N,) int64."""

    concordant: npt.NDArray[np.int64]
    """Pairs both order strictly, the same way."""
    discordant: npt.NDArray[np.int64]
    """Pairs both order strictly, opposite ways."""
    tied_a: npt.NDArray[np.int64]
    """Pairs A ties and B orders strictly."""
    tied_b: npt.NDArray[np.int64]
    """Pairs B ties and A orders strictly."""


def pair_counts_batch(A: npt.ArrayLike, B: npt.ArrayLike, *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> PairCounts:
    """Concordant, discordant and one-sided tied pairs of each row of A with the same row of B."""
    A_arr, B_arr = _as_rank_batch(A, B)
    counts = [np.zeros(A_arr.shape[0], dtype=np.int64) for _ in range(4)]
    for rows, sign_a, sign_b in _pair_signs(A_arr, B_arr, chunk_rows):
        product = sign_a * sign_b  # (rows, P): 1 same order, -1 opposite, 0 tied in either
        strict_a, strict_b = sign_a != 0, sign_b != 0  # (rows, P)
        counts[0][rows] = np.count_nonzero(product > 0, axis=1)
        counts[1][rows] = np.count_nonzero(product < 0, axis=1)
        counts[2][rows] = np.count_nonzero(~strict_a & strict_b, axis=1)
        counts[3][rows] = np.count_nonzero(strict_a & ~strict_b, axis=1)
    return PairCounts(*counts)


def pairwise_agreement_batch(
    A: npt.ArrayLike, B: npt.ArrayLike, *, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Per row, A scored against the reference B: (credit, pairs B orders strictly).

    credit = same order 1 + tied by A 0.5 (+ reversed 0) over the pairs B orders strictly. Row agreement
    is ``credit / pairs``; the pooled figure over rankings is ``credit.sum() / pairs.sum()``.
    """
    c = pair_counts_batch(A, B, chunk_rows=chunk_rows)
    return c.concordant + 0.5 * c.tied_a, c.concordant + c.discordant + c.tied_a


def peer_agreement_batch(
    A: npt.ArrayLike, B: npt.ArrayLike, *, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Per row, two peers' rankings: (credit, pairs at least one orders strictly); a one-sided tie counts 0.5."""
    c = pair_counts_batch(A, B, chunk_rows=chunk_rows)
    one_tied = c.tied_a + c.tied_b
    return c.concordant + 0.5 * one_tied, c.concordant + c.discordant + one_tied


def pairwise_agreement(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Agreement of ranking a with the reference b over b's strict pairs, a's ties counting 0.5 (nan if none)."""
    credit, pairs = pairwise_agreement_batch(*_as_rank_pair(a, b))
    return float(credit[0] / pairs[0]) if pairs[0] else float("nan")


def peer_agreement(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Agreement of two peers over the pairs either orders strictly, a one-sided tie counting 0.5 (nan if none)."""
    credit, pairs = peer_agreement_batch(*_as_rank_pair(a, b))
    return float(credit[0] / pairs[0]) if pairs[0] else float("nan")


def kendall_tau_b_batch(
    A: npt.ArrayLike, B: npt.ArrayLike, *, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> npt.NDArray[np.float64]:
    """Kendall tau-b of each row of A with the same row of B; nan where either row is all ties.

    tau_b = (C - D) / sqrt((n0 - n1)(n0 - n2)) with n0 pairs, n1 / n2 pairs tied in a / b.
    With signs s_a, s_b over pairs: C - D = sum(s_a s_b), n0 - n1 = sum(s_a^2), n0 - n2 = sum(s_b^2).
    """
    A_arr, B_arr = _as_rank_batch(A, B)
    numerator = np.zeros(A_arr.shape[0], dtype=np.int64)
    untied_a = np.zeros(A_arr.shape[0], dtype=np.int64)
    untied_b = np.zeros(A_arr.shape[0], dtype=np.int64)
    for rows, sign_a, sign_b in _pair_signs(A_arr, B_arr, chunk_rows):
        numerator[rows] = (sign_a * sign_b).sum(axis=1, dtype=np.int64)
        untied_a[rows] = np.count_nonzero(sign_a, axis=1)
        untied_b[rows] = np.count_nonzero(sign_b, axis=1)
    denominator = np.sqrt(untied_a.astype(np.float64) * untied_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = numerator / denominator
    return np.where(denominator > 0, tau, np.nan)


def kendall_tau_b(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Kendall tau-b of two rank vectors (equals ``scipy.stats.kendalltau``); nan if either is all ties."""
    return float(kendall_tau_b_batch(*_as_rank_pair(a, b))[0])


class PositionBias(NamedTuple):
    """How often the item shown first won, against what chance alone would give."""

    observed_rate: float
    """Share of comparisons won by the first-shown item."""
    chance_rate: float
    """mean(1 / k): the expected first-shown win rate if position did not matter."""
    n: int
    """Number of comparisons."""


def position_bias(first_shown_won: npt.ArrayLike, k: npt.ArrayLike) -> PositionBias:
    """First-shown-wins rate and its chance rate mean(1/k) over comparisons of k items each."""
    won = np.asarray(first_shown_won, dtype=bool)
    k_arr = np.asarray(k)
    if won.ndim != 1 or won.shape != k_arr.shape:
        raise ValueError(f"expected two 1-d arrays of the same length, got {won.shape} and {k_arr.shape}")
    if won.size == 0:
        return PositionBias(float("nan"), float("nan"), 0)
    if np.any(k_arr < 1):
        raise ValueError("every comparison needs k >= 1 items")
    return PositionBias(float(won.mean()), float(np.mean(1.0 / k_arr)), int(won.size))
