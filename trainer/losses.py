"""Pure training losses over tensors; each returns ``(loss, stats)`` with detached stats.

Reward model (InstructGPT section 3.5): a ranking of K completions is one batch element. Its K rewards give all
C(K,2) comparisons at once; the loss of a ranking is the mean over its strict pairs of
``-log sigmoid(r_better - r_worse)`` (tied pairs are not trained on).
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


# --- PPO (InstructGPT section 3.5; "The N implementation details of RLHF with PPO") -------------------------------
# Shapes: (B, T) over response tokens; `mask` is 1 on real response tokens (EOS included), 0 after EOS.


def _check_mask(values: Tensor, mask: Tensor, minimum: int = 1) -> Tensor:
    if values.shape != mask.shape:
        raise ValueError(f"values {tuple(values.shape)} and mask {tuple(mask.shape)} differ in shape")
    mask = mask.to(values.dtype)
    if float(mask.sum()) < minimum:
        raise ValueError(f"mask selects {int(mask.sum())} elements, needs at least {minimum} (empty batch?)")
    return mask


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of `values` where `mask` is 1; ValueError on an empty mask."""
    mask = _check_mask(values, mask)
    return (values * mask).sum() / mask.sum()


def masked_var(values: Tensor, mask: Tensor, *, unbiased: bool = True) -> Tensor:
    """Variance of `values` where `mask` is 1 (Bessel-corrected unless `unbiased=False`)."""
    mask = _check_mask(values, mask, minimum=2 if unbiased else 1)
    count = mask.sum()
    mean = (values * mask).sum() / count
    var = (((values - mean) ** 2) * mask).sum() / count
    return var * count / (count - 1) if unbiased else var


def masked_whiten(values: Tensor, mask: Tensor, *, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """``(values - mean) / std`` over the masked elements (mean kept when `shift_mean` is False); 0 off the mask."""
    mean, var = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask.to(values.dtype)


def last_index(mask: Tensor) -> Tensor:
    """(B, T) mask -> (B,) index of its last 1 (0 for an empty row)."""
    positions = torch.arange(mask.shape[-1], device=mask.device)  # (T,)
    return (positions * mask.long()).argmax(dim=-1)


def kl_penalty(logprobs: Tensor, ref_logprobs: Tensor, estimator: str = "k1") -> Tensor:
    """Per-token KL(pi || pi_ref) estimate from sampled tokens: k1 = log pi - log pi_ref, k3 = (r - 1) - log r."""
    log_ratio = logprobs - ref_logprobs  # (B, T)
    if estimator == "k1":
        return log_ratio
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r} (k1 or k3)")


def kl_shaped_rewards(
    logprobs: Tensor, ref_logprobs: Tensor, scores: Tensor, mask: Tensor, kl_coef: float, estimator: str = "k1"
) -> tuple[Tensor, Tensor]:
    """Per-token rewards ``-kl_coef * kl`` with the episode score added on the last real token; returns (rewards, kl).

    logprobs, ref_logprobs, mask: (B, T); scores: (B,). Both outputs are 0 off the mask.
    """
    mask = mask.to(logprobs.dtype)
    kl = kl_penalty(logprobs, ref_logprobs, estimator) * mask  # (B, T)
    rewards = -kl_coef * kl  # (B, T)
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last_index(mask)] += scores.to(rewards.dtype) * (mask.sum(-1) > 0)
    return rewards, kl


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0, lam: float = 0.95) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over (B, T) tokens; the value after the last real token is 0.

    ``delta_t = r_t + gamma * V_{t+1} - V_t``; ``A_t = delta_t + gamma * lam * A_{t+1}``; returns = A + V.
    Returns (advantages, returns), both 0 off the mask.
    """
    if not rewards.shape == values.shape == mask.shape:
        raise ValueError(f"shapes differ: {tuple(rewards.shape)}, {tuple(values.shape)}, {tuple(mask.shape)}")
    mask = mask.to(values.dtype)
    values, rewards = values * mask, rewards * mask
    advantages = torch.zeros_like(values)  # (B, T)
    last = torch.zeros_like(values[:, 0])  # (B,)
    for t in reversed(range(values.shape[1])):
        next_value = values[:, t + 1] if t + 1 < values.shape[1] else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = (delta + gamma * lam * last) * mask[:, t]
        advantages[:, t] = last
    return advantages, (advantages + values) * mask


def policy_loss(
    new_logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, clip: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO clipped surrogate ``max(-A r, -A clip(r, 1-eps, 1+eps))`` averaged over masked tokens.

    Stats: ``loss/policy``, ``policy/clipfrac`` (tokens where the clipped term is larger), ``policy/approx_kl``
    (k3 estimator ``(r - 1) - log r``), ``policy/ratio`` (mean), ``policy/ratio_max``.
    """
    log_ratio = new_logprobs - old_logprobs  # (B, T)
    ratio = torch.exp(log_ratio)
    pg_losses = -advantages * ratio
    pg_losses2 = -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    pg_loss = masked_mean(torch.max(pg_losses, pg_losses2), mask)
    with torch.no_grad():
        stats = {
            "loss/policy": pg_loss.detach(),
            "policy/clipfrac": masked_mean((pg_losses2 > pg_losses).to(ratio.dtype), mask),
            "policy/approx_kl": masked_mean((ratio - 1) - log_ratio, mask),
            "policy/ratio": masked_mean(ratio, mask),
            "policy/ratio_max": torch.where(mask.bool(), ratio, 0.0).max(),
        }
    return pg_loss, stats


def value_loss(
    new_values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped value loss ``0.5 * max((V - R)^2, (clip(V, V_old +- eps) - R)^2)`` averaged over masked tokens.

    Stats: ``loss/value``, ``value/clipfrac``, ``value/mean``.
    """
    clipped = old_values + torch.clamp(new_values - old_values, -clip, clip)
    vf_losses1 = (new_values - returns) ** 2
    vf_losses2 = (clipped - returns) ** 2
    vf_loss = 0.5 * masked_mean(torch.max(vf_losses1, vf_losses2), mask)
    with torch.no_grad():
        stats = {
            "loss/value": vf_loss.detach(),
            "value/clipfrac": masked_mean((vf_losses2 > vf_losses1).to(new_values.dtype), mask),
            "value/mean": masked_mean(new_values, mask),
        }
    return vf_loss, stats


def explained_variance(values: Tensor, returns: Tensor, mask: Tensor) -> Tensor:
    """``1 - Var(returns - values) / Var(returns)`` over masked tokens (NaN when the returns are constant)."""
    var_returns = masked_var(returns, mask, unbiased=False)
    return 1 - masked_var(returns - values, mask, unbiased=False) / var_returns


def entropy_from_logits(logits: Tensor, chunk_size: int = 1024) -> Tensor:
    """(..., V) logits -> (...) entropy of softmax, computed `chunk_size` rows at a time to bound memory."""
    flat = logits.reshape(-1, logits.shape[-1])  # (N, V)
    out = torch.empty(flat.shape[0], dtype=torch.float32, device=logits.device)
    for start in range(0, flat.shape[0], chunk_size):
        chunk = flat[start : start + chunk_size].float()
        log_probs = torch.log_softmax(chunk, dim=-1)
        out[start : start + chunk_size] = -(log_probs.exp() * log_probs).sum(-1)
    return out.reshape(logits.shape[:-1])
