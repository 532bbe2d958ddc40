"""The reward model's loss (InstructGPT section 3.5): a ranking of K completions is one batch element. Its K rewards
give all C(K,2) comparisons at once; the loss of a ranking is the mean over its strict pairs of
``-log sigmoid(r_better - r_worse)`` (tied pairs are not trained on). Pure functions; stats are detached.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

PADDING = -1
"""Index / rank value of an empty slot (a ranking with fewer than K completions, or a completion left out)."""


def gather_group_rewards(rewards: Tensor, index: Tensor) -> Tensor:
    """Arrange per-row rewards into groups: ``out[g, k] = rewards[index[g, k]]``, 0 where ``index`` is -1."""
    if rewards.dim() != 1 or index.dim() != 2:
        raise ValueError(f"expected rewards (N,) and index (G, K), got {tuple(rewards.shape)}, {tuple(index.shape)}")
    if index.numel() and int(index.max()) >= rewards.shape[0]:
        raise ValueError(f"index {int(index.max())} out of range for {rewards.shape[0]} rewards")
    padding = index < 0  # (G, K)
    gathered = rewards[index.clamp(min=0)]  # (G, K)
    return gathered.masked_fill(padding, 0.0)


def strict_pairs(ranks: Tensor) -> Tensor:
    """``out[g, i, j]`` is True when completion i is ranked strictly better than j (bucket 0 = best)."""
    valid = ranks >= 0  # (G, K)
    better = ranks[:, :, None] < ranks[:, None, :]  # (G, K, K)
    return better & valid[:, :, None] & valid[:, None, :]


def ranking_loss(rewards: Tensor, ranks: Tensor, weights: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """Pairwise ranking loss, batched over groups of different K.

    rewards: (G, K) reward of each slot; ranks: (G, K) bucket index (0 = best, ties share one, -1 = padding);
    weights: (G,) weight of each ranking, or None for 1. Each group's loss is the mean over its strict pairs;
    the batch loss is the weighted mean over the groups with at least one strict pair.
    Stats: ``loss/ranking``, ``rm/accuracy`` (over all strict pairs, equal rewards count half), ``rm/pairs``,
    ``rm/correct`` (accuracy numerator, for exact sums across micro-batches), ``rm/margin`` (mean
    ``r_better - r_worse``).
    """
    if rewards.shape != ranks.shape or rewards.dim() != 2:
        raise ValueError(f"rewards and ranks must both be (G, K), got {tuple(rewards.shape)}, {tuple(ranks.shape)}")
    if weights is None:
        weights = torch.ones(rewards.shape[0], dtype=rewards.dtype, device=rewards.device)
    if weights.shape != rewards.shape[:1]:
        raise ValueError(f"weights must be (G,) = {tuple(rewards.shape[:1])}, got {tuple(weights.shape)}")
    pairs = strict_pairs(ranks)  # (G, K, K)
    diff = rewards[:, :, None] - rewards[:, None, :]  # (G, K, K): r_i - r_j
    pair_loss = -F.logsigmoid(diff)  # (G, K, K)
    n_pairs = pairs.sum(dim=(1, 2))  # (G,)
    group_loss = torch.where(pairs, pair_loss, 0.0).sum(dim=(1, 2)) / n_pairs.clamp(min=1)  # (G,)
    group_weight = torch.where(n_pairs > 0, weights.to(rewards.dtype), 0.0)  # (G,)
    total_weight = group_weight.sum()
    # A batch without strict pairs gives 0 / 1 = 0, still attached to the graph (no host sync needed).
    loss = (group_weight * group_loss).sum() / torch.where(total_weight > 0, total_weight, 1.0)
    with torch.no_grad():
        pair_diff = diff[pairs]  # (P,)
        correct = (pair_diff > 0).sum() + 0.5 * (pair_diff == 0).sum()
        count = pairs.sum()
        stats = {
            "loss/ranking": loss.detach(),
            "rm/accuracy": correct / count.clamp(min=1),
            "rm/pairs": count.to(rewards.dtype),
            "rm/correct": correct.to(rewards.dtype),
            "rm/margin": pair_diff.mean() if pair_diff.numel() else rewards.new_zeros(()),
        }
    return loss, stats
