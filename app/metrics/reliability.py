"""Inter-rater reliability: Krippendorff's alpha, Cohen's kappa and percent agreement.

Krippendorff's alpha follows K. Krippendorff, "Computing Krippendorff's Alpha-Reliability" (2011):
build the coincidence matrix o_ck from every pairable value in each unit, then
alpha = 1 - D_o / D_e = 1 - (n - 1) * sum_ck o_ck d2_ck / sum_ck n_c n_k d2_ck.
"""

from typing import Literal

import numpy as np
import numpy.typing as npt

AlphaLevel = Literal["nominal", "ordinal", "interval"]


def _coincidences(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (values (V,), coincidence matrix o (V, V)) over units with at least two values."""
    present = ~np.isnan(matrix)  # (coders, units)
    values, value_codes = np.unique(matrix[present], return_inverse=True)  # (V,) sorted, (M,)
    n_units, n_values = matrix.shape[1], len(values)
    unit_codes = np.nonzero(present)[1]  # (M,) unit of each value, same order as matrix[present]
    # n_uc: how many coders gave unit u the value c.
    n_uc = np.bincount(unit_codes * n_values + value_codes, minlength=n_units * n_values)
    n_uc = n_uc.reshape(n_units, n_values).astype(np.float64)  # (U, V)
    m_u = present.sum(axis=0)  # (U,) pairable values per unit
    pairable = m_u >= 2
    n_uc, m_u = n_uc[pairable], m_u[pairable]
    weights = 1.0 / (m_u - 1)  # (U',)
    # o_ck = sum_u n_uc (n_uk - [c == k]) / (m_u - 1): pairs of values from different coders.
    o = (n_uc * weights[:, None]).T @ n_uc - np.diag((n_uc * weights[:, None]).sum(axis=0))  # (V, V)
    return values, o


def _squared_distances(values: np.ndarray, n_c: np.ndarray, level: AlphaLevel) -> np.ndarray:
    """Return the (V, V) squared distance d2_ck for the chosen measurement level."""
    if level == "nominal":
        return 1.0 - np.eye(len(values))
    if level == "interval":
        return (values[:, None] - values[None, :]) ** 2
    if level == "ordinal":
        # d_ck = sum_{g=c..k} n_g - (n_c + n_k) / 2, i.e. the gap between the values' mid-ranks.
        mid_rank = np.cumsum(n_c) - n_c / 2.0  # (V,)
        return (mid_rank[:, None] - mid_rank[None, :]) ** 2
    raise ValueError(f"unknown level {level!r}; expected 'nominal', 'ordinal' or 'interval'")


def krippendorff_alpha(matrix: npt.ArrayLike, *, level: AlphaLevel = "ordinal") -> float:
    """Krippendorff's alpha for a (n_coders, n_units) matrix with np.nan for missing values.

    Units with fewer than two values are not pairable and are left out. Returns nan when no unit
    is pairable or when every pairable value is the same (no expected disagreement).
    """
    data = np.asarray(matrix, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"expected a (n_coders, n_units) matrix, got shape {data.shape}")
    values, o = _coincidences(data)
    n_c = o.sum(axis=1)  # (V,) marginals
    n = n_c.sum()
    if n == 0:
        return float("nan")
    d2 = _squared_distances(values, n_c, level)  # (V, V)
    expected = (np.outer(n_c, n_c) * d2).sum()
    if expected == 0:
        return float("nan")
    observed = (o * d2).sum()
    return float(1.0 - (n - 1) * observed / expected)


def krippendorff_alpha_ordinal(matrix: npt.ArrayLike) -> float:
    """Krippendorff's alpha with the ordinal metric for a (n_coders, n_units) matrix (nan = missing)."""
    return krippendorff_alpha(matrix, level="ordinal")


def ranking_alpha(R: npt.ArrayLike) -> float:
    """Ordinal alpha of many labelers ranking the same K items: R is (n_labelers, K) rank vectors.

    Labelers are the coders, the K items are the units and each value is a labeler's rank of an item;
    nan marks an item a labeler did not rank.
    """
    ranks = np.asarray(R, dtype=np.float64)
    if ranks.ndim != 2:
        raise ValueError(f"expected a (n_labelers, K) array of rank vectors, got shape {ranks.shape}")
    return krippendorff_alpha(ranks, level="ordinal")


def ranking_alpha_grouped(ranks: npt.ArrayLike, group: npt.ArrayLike, n_groups: int) -> np.ndarray:
    """``ranking_alpha`` of many tasks at once: row n of ``ranks`` is one labeler's rank vector of task ``group[n]``.

    ranks: (N, K) integer rank (bucket index) per item, -1 where the item is missing (padding past a task's k).
    group: (N,) task index in [0, n_groups). Returns (n_groups,) alphas, nan where ``ranking_alpha`` is nan.
    The ordinal metric only needs the counts of each rank value, so every task shares the value grid 0..K-1
    (values nobody used have zero counts and change nothing).
    """
    r = np.asarray(ranks, dtype=np.int64)
    g = np.asarray(group, dtype=np.int64)
    if r.ndim != 2 or g.shape != (r.shape[0],):
        raise ValueError(f"expected (N, K) ranks and (N,) groups, got {r.shape} and {g.shape}")
    n_items = r.shape[1]
    n_values = max(n_items, int(r.max(initial=0)) + 1)
    rows, items = np.nonzero(r >= 0)
    flat = (g[rows] * n_items + items) * n_values + r[rows, items]
    size = n_groups * n_items * n_values
    n_uc = np.bincount(flat, minlength=size).reshape(n_groups, n_items, n_values).astype(np.float64)  # (G, U, V)
    m_u = n_uc.sum(axis=2)  # (G, U) values per unit
    weights = np.where(m_u >= 2, 1.0 / np.maximum(m_u - 1, 1), 0.0)  # unpairable units weigh nothing
    weighted = n_uc * weights[:, :, None]
    o = np.einsum("guc,guk->gck", weighted, n_uc)  # (G, V, V)
    diagonal = weighted.sum(axis=1)  # (G, V)
    o[:, np.arange(n_values), np.arange(n_values)] -= diagonal
    n_c = o.sum(axis=2)  # (G, V)
    n = n_c.sum(axis=1)  # (G,)
    mid_rank = np.cumsum(n_c, axis=1) - n_c / 2.0
    d2 = (mid_rank[:, :, None] - mid_rank[:, None, :]) ** 2  # (G, V, V)
    expected = np.einsum("gc,gk,gck->g", n_c, n_c, d2)
    observed = (o * d2).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = 1.0 - (n - 1) * observed / expected
    return np.where((n > 0) & (expected > 0), alpha, np.nan)


def _as_label_pair(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x_arr, y_arr = np.asarray(x), np.asarray(y)
    if x_arr.ndim != 1 or x_arr.shape != y_arr.shape:
        raise ValueError(f"expected two label vectors of the same length, got {x_arr.shape} and {y_arr.shape}")
    return x_arr, y_arr


def percent_agreement(x: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Share of items on which the two label vectors agree (nan when empty)."""
    x_arr, y_arr = _as_label_pair(x, y)
    return float(np.mean(x_arr == y_arr)) if x_arr.size else float("nan")


def cohen_kappa(x: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Cohen's kappa (p_o - p_e) / (1 - p_e) of two binary or categorical label vectors (nan when empty).

    When expected agreement p_e is 1 (both raters used one and the same label throughout) kappa is
    0/0; we return 1.0 if observed agreement is 1 and 0.0 otherwise, so perfect agreement on a
    constant flag (e.g. neither ever flagged "sensitive") does not show up as missing.
    """
    x_arr, y_arr = _as_label_pair(x, y)
    if x_arr.size == 0:
        return float("nan")
    _, codes = np.unique(np.concatenate([x_arr, y_arr]), return_inverse=True)
    x_codes, y_codes = codes[: x_arr.size], codes[x_arr.size :]
    n_labels = int(codes.max()) + 1
    p_x = np.bincount(x_codes, minlength=n_labels) / x_arr.size  # (L,) marginal of rater x
    p_y = np.bincount(y_codes, minlength=n_labels) / y_arr.size  # (L,) marginal of rater y
    p_o = float(np.mean(x_codes == y_codes))
    p_e = float(p_x @ p_y)
    # Exact comparison on purpose: p_e is exactly 1.0 only when a single label was used, while a
    # tolerance would also swallow real cases such as one disagreement in a million items.
    if p_e == 1.0:
        return 1.0 if p_o == 1.0 else 0.0
    return (p_o - p_e) / (1.0 - p_e)
