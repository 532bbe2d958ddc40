"""Model-vs-model preference from rankings: win rates and Bradley-Terry ratings (pure numpy).

Outcomes are pairwise: in one ranking, an output of model i placed above an output of model j is a win of i over j
(1), a tie 0.5 each. ``bradley_terry`` fits strengths p_i with P(i beats j) = p_i / (p_i + p_j) by Hunter's (2004)
MM iterations (ties as half-wins), reported as Elo-like ratings 400 * log10(p_i) centred on the mean.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

ELO_SCALE = 400.0 / np.log(10.0)
"""Natural-log strengths to Elo points (400 points = 10:1 odds)."""


def bradley_terry(
    wins: npt.ArrayLike, *, iterations: int = 10_000, tol: float = 1e-10, prior: float = 0.5
) -> np.ndarray:
    """Elo-scaled ratings (mean 0) from a (M, M) matrix of wins[i, j] = times i beat j (ties as 0.5 each way).

    `prior` adds that many virtual half-wins each way between every pair that met, so a model that won (or lost)
    every comparison still gets a finite rating.
    """
    w = np.asarray(wins, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"wins must be a square matrix, got shape {w.shape}")
    if (w < 0).any():
        raise ValueError("wins must be non-negative")
    games = w + w.T
    w = w + prior * (games > 0)
    games = w + w.T
    np.fill_diagonal(games, 0.0)
    total_wins = w.sum(axis=1) - np.diag(w)
    p = np.ones(w.shape[0])
    for _ in range(iterations):
        denom = (games / (p[:, None] + p[None, :])).sum(axis=1)
        new = np.where(denom > 0, total_wins / np.where(denom > 0, denom, 1.0), p)
        new = new / np.exp(np.log(np.where(new > 0, new, 1.0)).mean())
        if np.abs(new - p).max() < tol:
            p = new
            break
        p = new
    ratings = ELO_SCALE * np.log(p)
    return ratings - ratings.mean()


def win_probability(rating_a: float, rating_b: float) -> float:
    """P(a beats b) under Bradley-Terry for Elo-scaled ratings."""
    return float(1.0 / (1.0 + 10.0 ** ((rating_b - rating_a) / 400.0)))
