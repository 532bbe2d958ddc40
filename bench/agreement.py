"""Benchmark: pairwise agreement of N labeler rankings against their gold rankings.

Times ``app.metrics.pairwise_agreement_batch`` on all N rows against a plain-Python per-ranking loop
(and a per-ranking call of the numpy scalar function). The loops only run on a subsample; their time for
N rows is extrapolated linearly, and the table says so.

    python bench/agreement.py --n 1000000 --k 7
"""

import argparse
import itertools
import os
import platform
import sys
import time
from collections.abc import Callable

import numpy as np

from app.metrics import pairwise_agreement, pairwise_agreement_batch


def dense_ranks(scores: np.ndarray) -> np.ndarray:
    """(N, K) scores -> (N, K) rank vectors 0..b-1 per row, equal scores sharing a bucket."""
    order = np.argsort(scores, axis=1, kind="stable")  # (N, K)
    sorted_scores = np.take_along_axis(scores, order, axis=1)
    new_bucket = np.diff(sorted_scores, axis=1) > 0  # (N, K - 1)
    sorted_ranks = np.concatenate([np.zeros((len(scores), 1), np.int64), np.cumsum(new_bucket, axis=1)], axis=1)
    ranks = np.empty_like(sorted_ranks)
    np.put_along_axis(ranks, order, sorted_ranks, axis=1)
    return ranks


def make_rankings(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gold: strict random rankings. Labeler: gold plus noise, rounded so that some items tie (~75% agreement)."""
    rng = np.random.default_rng(seed)
    gold = np.argsort(rng.random((n, k)), axis=1).astype(np.int64)  # (N, K) random permutations
    noisy = np.floor((gold + rng.normal(0.0, 3.0, size=(n, k))) / 1.5)  # coarser scale -> ties
    return dense_ranks(noisy), gold


def agreement_python(a: list[int], b: list[int]) -> tuple[int, int]:
    """Reference: (agree, comparable) for one pair of rank vectors, in plain Python."""
    agree = comparable = 0
    for i, j in itertools.combinations(range(len(a)), 2):
        da, db = a[i] - a[j], b[i] - b[j]
        if da and db:
            comparable += 1
            agree += (da > 0) == (db > 0)
    return agree, comparable


def best_time(fn: Callable[[], object], repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - start)
    return min(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="rankings to score")
    parser.add_argument("--k", type=int, default=7, help="items per ranking")
    parser.add_argument("--loop-n", type=int, default=20_000, help="subsample size for the per-ranking loops")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of the vectorised path (best is kept)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    labeler, gold = make_rankings(args.n, args.k, args.seed)
    loop_n = min(args.loop_n, args.n)
    vectorised_s = best_time(lambda: pairwise_agreement_batch(labeler, gold), args.repeat)

    sub_labeler, sub_gold = labeler[:loop_n].tolist(), gold[:loop_n].tolist()
    start = time.perf_counter()
    python_counts = [agreement_python(a, b) for a, b in zip(sub_labeler, sub_gold, strict=True)]
    python_s = (time.perf_counter() - start) * args.n / loop_n
    start = time.perf_counter()
    for a, b in zip(labeler[:loop_n], gold[:loop_n], strict=True):
        pairwise_agreement(a, b)
    scalar_s = (time.perf_counter() - start) * args.n / loop_n

    agree, comparable = pairwise_agreement_batch(labeler, gold)
    if not np.array_equal(np.column_stack([agree[:loop_n], comparable[:loop_n]]), np.array(python_counts)):
        sys.exit("vectorised and plain-Python counts differ")
    pooled = agree.sum() / comparable.sum()

    command = f"python bench/agreement.py --n {args.n} --k {args.k}"
    machine = (
        f"{os.cpu_count()}-core CPU ({platform.machine()}), Python {platform.python_version()}, numpy {np.__version__}"
    )
    rows = [
        ("pairwise_agreement_batch (vectorised)", f"all {args.n:,}", vectorised_s),
        ("plain-Python loop per ranking", f"{loop_n:,}, extrapolated", python_s),
        ("pairwise_agreement() per ranking", f"{loop_n:,}, extrapolated", scalar_s),
    ]
    print(f"{command}\nmachine: {machine}\npooled agreement: {pooled:.4f} (sanity: counts match on the subsample)\n")
    print(f"{'method':<40} {'rows timed':<24} {'seconds':>9} {'rankings/s':>12} {'vs vectorised':>14}")
    for name, timed, seconds in rows:
        ratio = seconds / vectorised_s
        print(f"{name:<40} {timed:<24} {seconds:>9.3f} {args.n / seconds:>12,.0f} {ratio:>13.1f}x")

    print("\nMarkdown for docs/benchmarks.md:\n")
    print(f"### Pairwise agreement, {args.n:,} rankings of K={args.k} vs gold\n")
    print(f"`{command}` on a {machine}.")
    print(f"Vectorised time is the best of {args.repeat} runs over all rows; loop times are measured on the")
    print(f"first {loop_n:,} rankings and extrapolated linearly to {args.n:,}.\n")
    print("| method | seconds | rankings/s | slower than vectorised |")
    print("|---|---:|---:|---:|")
    for name, timed, seconds in rows:
        label = name if timed.startswith("all") else f"{name} (extrapolated)"
        print(f"| {label} | {seconds:.3f} | {args.n / seconds:,.0f} | {seconds / vectorised_s:.1f}x |")


if __name__ == "__main__":
    main()
