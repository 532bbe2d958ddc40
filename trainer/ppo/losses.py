"""PPO's pure losses over tensors (InstructGPT section 3.5; "The N implementation details of RLHF with PPO"); each
loss returns ``(loss, stats)`` with detached stats.

Shapes: (B, T) over response tokens; `mask` is 1 on real response tokens (EOS included), 0 after EOS.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainer.common.masked import masked_mean, masked_var


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
