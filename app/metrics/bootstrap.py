"""Percentile bootstrap intervals, vectorised over resamples.

Each batch of resamples is an (R, n) index array drawn with replacement; batches are sized so
that R * n stays near ``_MAX_BATCH_ELEMENTS`` and memory stays bounded for large n.
"""

from collections.abc import Callable, Iterator

import numpy as np
import numpy.typing as npt

_MAX_BATCH_ELEMENTS = 1 << 22

Statistic = Callable[..., npt.ArrayLike]


def _check_args(n_resamples: int, confidence: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")


def _resample_indices(n: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Yield (R, n) index arrays, R summing to n_resamples, all from one seeded generator."""
    rng = np.random.default_rng(seed)
    batch = max(1, _MAX_BATCH_ELEMENTS // n)
    for start in range(0, n_resamples, batch):
        yield rng.integers(0, n, size=(min(batch, n_resamples - start), n))


def _percentile_interval(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [tail, 1.0 - tail])
    return float(low), float(high)


def bootstrap_ci(
    values: npt.ArrayLike,
    *,
    stat: Statistic = np.mean,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap (low, high) interval of ``stat`` over 1-d values; (nan, nan) when empty.

    ``stat`` must reduce along an ``axis`` keyword (numpy reductions do). NaN values are dropped
    first, e.g. rankings with no comparable pair.
    """
    _check_args(n_resamples, confidence)
    data = np.asarray(values, dtype=np.float64).ravel()
    data = data[~np.isnan(data)]
    if data.size == 0:
        return float("nan"), float("nan")
    stats = np.concatenate(
        [
            np.asarray(stat(data[idx], axis=1), dtype=np.float64)  # (R,) from (R, n)
            for idx in _resample_indices(data.size, n_resamples, seed)
        ]
    )
    return _percentile_interval(stats, confidence)


def bootstrap_ratio_ci(
    numerators: npt.ArrayLike,
    denominators: npt.ArrayLike,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap (low, high) of sum(numerators) / sum(denominators), resampling whole units.

    Units are e.g. rankings, with numerators = agreeing pairs and denominators = comparable pairs,
    so the interval respects that pairs within one ranking are not independent. Resamples whose
    denominators sum to 0 are left out; (nan, nan) when empty or when every resample is.
    """
    _check_args(n_resamples, confidence)
    num = np.asarray(numerators, dtype=np.float64).ravel()
    den = np.asarray(denominators, dtype=np.float64).ravel()
    if num.shape != den.shape:
        raise ValueError(f"numerators and denominators differ in length: {num.size} vs {den.size}")
    if num.size == 0:
        return float("nan"), float("nan")
    ratios = []
    for idx in _resample_indices(num.size, n_resamples, seed):
        num_sum, den_sum = num[idx].sum(axis=1), den[idx].sum(axis=1)  # (R,), (R,)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios.append(num_sum / den_sum)
    return _percentile_interval(np.concatenate(ratios), confidence)
