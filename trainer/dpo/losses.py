"""Direct preference optimisation from K-way rankings: pure losses over (G, K) tensors, each ``(loss, stats)``.

One policy pass per completion gives its log-probability; the frozen reference's is computed once. The implicit
reward of completion y is ``r(y) = beta * (log pi(y|x) - log pi_ref(y|x))``. With ``ranks`` the bucket of every
completion (0 = best, ties share a bucket, -1 = padding / left out):

* ``dpo`` (sigmoid): the mean over the ranking's strict pairs (i better than j) of ``-log sigmoid(r_i - r_j)``;
* ``ipo``: the mean over the strict pairs of ``(h_ij - 1 / (2 beta))^2`` with ``h_ij`` the log-ratio difference
  (the implicit rewards divided by beta);
* ``listwise``: Plackett-Luce over the buckets, ``-mean_i [r_i - log sum_{j in buckets >= bucket(i)} exp r_j]``
  over the items i outside the last bucket, tied items sharing their bucket's risk set (Breslow); the last bucket
  chooses nothing, so, as with pairs, ties are never trained on. With two items in two buckets it is ``dpo``.

Each ranking is one batch element; the batch loss is the mean over rankings that have a strict pair.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

DpoLossType = Literal["dpo", "ipo", "listwise"]
LOSS_TYPES: tuple[DpoLossType, ...] = ("dpo", "ipo", "listwise")


def strict_pairs(ranks: Tensor) -> Tensor:
    """``out[g, i, j]``: completion i is in a strictly better bucket than j (both ranked)."""
    valid = ranks >= 0  # (G, K)
    return (ranks[:, :, None] < ranks[:, None, :]) & valid[:, :, None] & valid[:, None, :]


def _mean_over_groups(per_group: Tensor, counted: Tensor) -> Tensor:
    """Mean of `per_group` over the groups where `counted`; 0 (still on the graph) when none is."""
    n = counted.sum()
    return torch.where(counted, per_group, 0.0).sum() / torch.where(n > 0, n, 1).to(per_group.dtype)


def pairwise_loss(rewards: Tensor, ranks: Tensor, *, loss_type: DpoLossType, beta: float) -> Tensor:
    """``dpo`` or ``ipo``: each ranking's mean over its strict pairs, then the mean over rankings with a pair."""
    pairs = strict_pairs(ranks)  # (G, K, K)
    diff = rewards[:, :, None] - rewards[:, None, :]  # (G, K, K): r_i - r_j
    pair_loss = -F.logsigmoid(diff) if loss_type == "dpo" else (diff / beta - 1.0 / (2.0 * beta)) ** 2
    n_pairs = pairs.sum(dim=(1, 2))  # (G,)
    group = torch.where(pairs, pair_loss, 0.0).sum(dim=(1, 2)) / n_pairs.clamp(min=1)
    return _mean_over_groups(group, n_pairs > 0)


def listwise_loss(rewards: Tensor, ranks: Tensor) -> Tensor:
    """Plackett-Luce over buckets with tied items sharing their risk set; items of the last bucket choose nothing."""
    valid = ranks >= 0  # (G, K)
    last = torch.where(valid, ranks, -1).max(dim=1, keepdim=True).values  # (G, 1)
    chooses = valid & (ranks < last)  # (G, K): items outside the last bucket
    # risk[g, i, j]: j is still to be chosen when i's bucket chooses (its bucket or a worse one)
    risk = valid[:, None, :] & (ranks[:, None, :] >= ranks[:, :, None])  # (G, K, K)
    masked = torch.where(risk, rewards[:, None, :], float("-inf"))
    log_denominator = torch.logsumexp(masked, dim=2)  # (G, K)
    terms = torch.where(chooses, rewards - torch.where(chooses, log_denominator, 0.0), 0.0)
    n = chooses.sum(dim=1)  # (G,)
    group = -terms.sum(dim=1) / n.clamp(min=1)
    return _mean_over_groups(group, n > 0)


TIE_NATS = 1e-4
"""Implicit rewards whose log-ratios differ by at most this are equal for the accuracy: float32 sums of a few hundred
token log-probs taken in different batch shapes differ by ~1e-5, which is no preference (the policy = the reference
must score exactly 0.5)."""


def dpo_loss(
    policy_logps: Tensor, reference_logps: Tensor, ranks: Tensor, *, beta: float, loss_type: DpoLossType = "dpo"
) -> tuple[Tensor, dict[str, Tensor]]:
    """The DPO family over rankings. ``*_logps``: (G, K) summed completion log-probs; ``ranks``: (G, K).

    Stats: ``loss/dpo``; ``dpo/accuracy`` (pair accuracy, ties within ``TIE_NATS`` half) with ``dpo/correct`` and
    ``dpo/pairs`` for exact sums; ``dpo/margin`` (mean ``r_better - r_worse``); ``rewards/chosen`` and
    ``rewards/rejected`` (mean implicit reward of the best and worst buckets); ``logps/chosen`` and
    ``logps/rejected`` (their mean log-prob change from the reference: how far each side drifted).
    """
    if not (policy_logps.shape == reference_logps.shape == ranks.shape) or ranks.dim() != 2:
        raise ValueError(
            f"policy_logps, reference_logps and ranks must all be (G, K); got {tuple(policy_logps.shape)}, "
            f"{tuple(reference_logps.shape)}, {tuple(ranks.shape)}"
        )
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"unknown loss_type {loss_type!r}; use one of {', '.join(LOSS_TYPES)}")
    valid = ranks >= 0
    log_ratio = torch.where(valid, policy_logps - reference_logps, 0.0)  # (G, K)
    rewards = beta * log_ratio
    if loss_type == "listwise":
        loss = listwise_loss(rewards, ranks)
    else:
        loss = pairwise_loss(rewards, ranks, loss_type=loss_type, beta=beta)
    return loss, _stats(loss, rewards, log_ratio, ranks)


@torch.no_grad()
def _stats(loss: Tensor, rewards: Tensor, log_ratio: Tensor, ranks: Tensor) -> dict[str, Tensor]:
    pairs = strict_pairs(ranks)
    diff = (rewards[:, :, None] - rewards[:, None, :])[pairs]  # (P,)
    drift = (log_ratio[:, :, None] - log_ratio[:, None, :])[pairs]  # (P,) the same, in nats, whatever beta
    tie = drift.abs() <= TIE_NATS
    correct = ((drift > 0) & ~tie).sum() + 0.5 * tie.sum()
    valid = ranks >= 0
    worst = torch.where(valid, ranks, -1).max(dim=1, keepdim=True).values
    has_pair = pairs.any(dim=(1, 2))[:, None]
    best_items, worst_items = valid & (ranks == 0) & has_pair, valid & (ranks == worst) & has_pair
    zero = rewards.new_zeros(())

    def mean(x: Tensor, where: Tensor) -> Tensor:
        return x[where].mean() if where.any() else zero

    return {
        "loss/dpo": loss.detach(),
        "dpo/accuracy": correct / pairs.sum().clamp(min=1),
        "dpo/correct": correct.to(rewards.dtype),
        "dpo/pairs": pairs.sum().to(rewards.dtype),
        "dpo/margin": diff.mean() if diff.numel() else zero,
        "rewards/chosen": mean(rewards, best_items),
        "rewards/rejected": mean(rewards, worst_items),
        "logps/chosen": mean(log_ratio, best_items),
        "logps/rejected": mean(log_ratio, worst_items),
    }
