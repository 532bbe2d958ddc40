"""Reward-model evaluation over scored rankings (pure numpy): accuracy, log loss, per-K, calibration, labelers.

Every metric is over strict pairs (tied pairs have no right answer), pooled across rankings. A pair's margin is
``d = r_better - r_worse``; the model is right when d > 0 (d == 0 counts half) and its log loss is
``-log sigmoid(d)``. Calibration orients each pair by the model's pick: predicted P(pick wins) =
``sigmoid(|d|)`` in [0.5, 1], observed = 1 when the pick was ranked better (0.5 when d == 0).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ScoredRanking:
    """One ranking with the model's reward for each of the task's completions."""

    rewards: Sequence[float]
    """Reward per completion, in task order."""
    ranks: Sequence[int]
    """Bucket per completion, 0 = best, -1 = left out."""
    labeler: str = ""
    """Who ranked."""


@dataclass(frozen=True)
class CalibrationBin:
    """Pairs whose predicted probability of the model's pick falls in [lower, upper)."""

    lower: float
    upper: float
    count: int
    predicted: float
    """Mean predicted P(pick is better)."""
    observed: float
    """Fraction of pairs where the pick was ranked better."""


@dataclass(frozen=True)
class RewardEvaluation:
    """Validation summary of a reward model."""

    accuracy: float
    log_loss: float
    pairs: int
    accuracy_by_k: dict[int, float] = field(default_factory=dict)
    calibration: list[CalibrationBin] = field(default_factory=list)
    calibration_error: float = 0.0
    """Expected calibration error: count-weighted mean |predicted - observed| over bins."""
    held_out_accuracy: float | None = None
    """Accuracy on the held-out labelers' rankings, when some were named."""

    def metrics(self, prefix: str = "val/") -> dict[str, float]:
        """Flat numbers for the job's metrics chart."""
        out = {
            f"{prefix}accuracy": self.accuracy,
            f"{prefix}log_loss": self.log_loss,
            f"{prefix}pairs": float(self.pairs),
            f"{prefix}calibration_error": self.calibration_error,
        }
        out |= {f"{prefix}accuracy_k{k}": acc for k, acc in self.accuracy_by_k.items()}
        if self.held_out_accuracy is not None:
            out[f"{prefix}held_out_labeler_accuracy"] = self.held_out_accuracy
        return out


def pair_margins(ranking: ScoredRanking) -> np.ndarray:
    """(P,) ``r_better - r_worse`` for every strict pair of one ranking."""
    rewards = np.asarray(ranking.rewards, dtype=np.float64)
    ranks = np.asarray(ranking.ranks)
    if rewards.shape != ranks.shape:
        raise ValueError(f"{rewards.shape[0]} rewards for {ranks.shape[0]} ranks")
    valid = ranks >= 0
    better = (ranks[:, None] < ranks[None, :]) & valid[:, None] & valid[None, :]  # (K, K)
    return (rewards[:, None] - rewards[None, :])[better]


def _margins(scored: Sequence[ScoredRanking]) -> np.ndarray:
    parts = [pair_margins(s) for s in scored]
    return np.concatenate(parts) if parts else np.zeros(0)


def pairwise_accuracy(margins: np.ndarray) -> float:
    """Fraction of pairs ordered right (equal rewards count half); nan without pairs."""
    if margins.size == 0:
        return float("nan")
    return float(np.mean((margins > 0) + 0.5 * (margins == 0)))


def log_loss(margins: np.ndarray) -> float:
    """Mean ``-log sigmoid(margin)``; nan without pairs."""
    return float(np.mean(np.logaddexp(0.0, -margins))) if margins.size else float("nan")


def accuracy_by_k(scored: Sequence[ScoredRanking]) -> dict[int, float]:
    """Accuracy per K = number of completions the ranking placed (left-out ones not counted)."""
    by_k: dict[int, list[np.ndarray]] = {}
    for s in scored:
        k = int(np.sum(np.asarray(s.ranks) >= 0))
        by_k.setdefault(k, []).append(pair_margins(s))
    return {k: pairwise_accuracy(np.concatenate(v)) for k, v in sorted(by_k.items())}


def calibration(margins: np.ndarray, n_bins: int = 5) -> list[CalibrationBin]:
    """Predicted vs observed win rate of the model's pick, in equal-width bins over [0.5, 1]; empty bins left out."""
    predicted = 1.0 / (1.0 + np.exp(-np.abs(margins)))
    observed = (margins > 0) + 0.5 * (margins == 0)
    edges = np.linspace(0.5, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, predicted, side="right") - 1, 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        chosen = which == b
        if chosen.any():
            bins.append(
                CalibrationBin(
                    float(edges[b]),
                    float(edges[b + 1]),
                    int(chosen.sum()),
                    float(predicted[chosen].mean()),
                    float(observed[chosen].mean()),
                )
            )
    return bins


def calibration_error(bins: Sequence[CalibrationBin]) -> float:
    """Count-weighted mean |predicted - observed|."""
    total = sum(b.count for b in bins)
    return sum(b.count * abs(b.predicted - b.observed) for b in bins) / total if total else float("nan")


def evaluate_rankings(
    scored: Sequence[ScoredRanking], *, held_out_labelers: Collection[str] = (), n_bins: int = 5
) -> RewardEvaluation:
    """Every validation metric at once; `held_out_labelers` adds accuracy on those labelers' rankings."""
    margins = _margins(scored)
    bins = calibration(margins, n_bins)
    held_out = None
    if held_out_labelers:
        held_out = pairwise_accuracy(_margins([s for s in scored if s.labeler in held_out_labelers]))
    return RewardEvaluation(
        accuracy=pairwise_accuracy(margins),
        log_loss=log_loss(margins),
        pairs=int(margins.size),
        accuracy_by_k=accuracy_by_k(scored),
        calibration=bins,
        calibration_error=calibration_error(bins),
        held_out_accuracy=held_out,
    )
