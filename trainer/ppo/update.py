"""One PPO update: rewards from a scored rollout (KL penalty, GAE, whitening), then epochs of minibatch steps.

Under torch.distributed every process updates on its own episodes; whitening and the reported statistics use
every process's numbers, and DDP averages the gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from trainer.common.distributed import sum_over_processes, whiten_over_processes
from trainer.common.generation import pack_episodes
from trainer.common.precision import bf16_autocast
from trainer.ppo.config import PPOConfig
from trainer.ppo.losses import explained_variance, gae, kl_shaped_rewards, policy_loss, value_loss
from trainer.ppo.rollout import Rollout
from trainer.ppo.state import RunningMoments


def seeded_generator(*key: int) -> torch.Generator:
    """A CPU generator seeded from a tuple of ints (run seed, purpose, step, ...)."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence(list(key)).generate_state(1)[0]))


def micro_batches(n_episodes: int, cfg: PPOConfig, step: int, epoch: int, rank: int) -> list[list[Tensor]]:
    """Row indices: ``[minibatch][micro-batch]`` for one epoch of one step on this process."""
    order = torch.randperm(n_episodes, generator=seeded_generator(cfg.seed, 2, step, epoch, rank))
    micro = n_episodes // (cfg.minibatches * cfg.grad_accum)
    chunks = list(order.split(micro))
    return [chunks[m * cfg.grad_accum : (m + 1) * cfg.grad_accum] for m in range(cfg.minibatches)]


@dataclass
class _Batch:
    """A scored rollout with its per-token advantages and returns, and its (global) rollout metrics."""

    rollout: Rollout
    advantages: Tensor
    returns: Tensor
    metrics: dict[str, float]


def shape_rewards(rollout: Rollout, cfg: PPOConfig, kl_coef: float, moments: RunningMoments) -> _Batch:
    """Penalise missing EOS, whiten scores (running), add the KL penalty, run GAE, whiten advantages."""
    assert rollout.logprobs is not None and rollout.ref_logprobs is not None and rollout.values is not None
    scores = rollout.scores.clone()
    if cfg.no_eos_penalty is not None:
        scores[~rollout.finished] -= cfg.no_eos_penalty
    if cfg.whiten_scores:
        moments.update(scores)
        scores = moments.whiten(scores)
    mask = rollout.response_mask.float()
    rewards, kl = kl_shaped_rewards(
        rollout.logprobs, rollout.ref_logprobs, scores, mask, kl_coef, estimator=cfg.kl_estimator
    )  # (B, Tr) each
    advantages, returns = gae(rewards, rollout.values, mask, gamma=cfg.gamma, lam=cfg.lam)
    if cfg.whiten_advantages:
        advantages = whiten_over_processes(advantages, mask)
    assert rollout.entropy is not None
    k1 = (rollout.logprobs - rollout.ref_logprobs) * mask
    sums = sum_over_processes(
        torch.stack([
            torch.tensor(float(len(scores))), rollout.scores.sum(), k1.sum(), (-kl_coef * kl).sum(),
            rollout.entropy.sum(), mask.sum(), rollout.finished.float().sum(),
        ]).double()
    )  # fmt: skip
    n, score_sum, kl_sum, non_score_sum, entropy_sum, tokens, finished = sums.tolist()
    metrics = {
        "objective/scores": score_sum / n,
        "objective/kl": kl_sum / n,
        "objective/kl_coef": kl_coef,
        "objective/non_score_reward": non_score_sum / n,
        "objective/rlhf_reward": (score_sum + non_score_sum) / n,
        "objective/entropy": entropy_sum / tokens,
        "episode/eos_rate": finished / n,
        "episode/length": tokens / n,
        "value/explained_variance": float(explained_variance(rollout.values, returns, mask)),
    }
    return _Batch(rollout, advantages, returns, metrics)


UPDATE_STATS = (
    "loss/policy",
    "loss/value",
    "loss/ptx",
    "policy/clipfrac",
    "policy/approx_kl",
    "policy/ratio",
    "value/clipfrac",
)


def _micro_step(
    net: nn.Module, batch: _Batch, index: Tensor, cfg: PPOConfig, ptx: tuple[Tensor, Tensor] | None
) -> tuple[Tensor, Tensor]:
    """Forward and backward one micro-batch; returns (UPDATE_STATS values, max |log ratio|) detached."""
    mb = batch.rollout.select(index)
    assert mb.logprobs is not None and mb.values is not None
    input_ids, attention_mask, start = pack_episodes(mb)
    width = input_ids.shape[1] - start
    device = next(net.parameters()).device
    ptx_ids, ptx_mask = (ptx[0].to(device), ptx[1].to(device)) if ptx is not None else (None, None)
    with bf16_autocast(cfg.bf16, device):
        logprobs, values, ptx_loss = net(
            input_ids.to(device), attention_mask.to(device), start, cfg.temperature, ptx_ids, ptx_mask
        )  # (b, w), (b, w), () in float32
    mask = mb.response_mask[:, :width].to(device)
    old_logprobs, old_values = mb.logprobs[:, :width].to(device), mb.values[:, :width].to(device)
    advantages = batch.advantages[index][:, :width].to(device)
    returns = batch.returns[index][:, :width].to(device)
    pg_loss, pg_stats = policy_loss(logprobs, old_logprobs, advantages, mask, cfg.cliprange)
    vf_loss, vf_stats = value_loss(values, old_values, returns, mask, cfg.cliprange_value)
    loss = pg_loss + cfg.vf_coef * vf_loss + cfg.ptx_coef * ptx_loss
    (loss / cfg.grad_accum).backward()
    stats = {**pg_stats, **vf_stats, "loss/ptx": ptx_loss.detach()}
    log_ratio = ((logprobs.detach() - old_logprobs) * mask).abs().max()
    return torch.stack([stats[k].float() for k in UPDATE_STATS]).cpu(), log_ratio.cpu()


def ppo_update(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: _Batch,
    first_epoch: list[list[Tensor]],
    cfg: PPOConfig,
    *,
    step: int,
    rank: int,
    ptx_batch: Callable[[int], tuple[Tensor, Tensor]] | None = None,
) -> dict[str, float]:
    """`cfg.epochs` passes of `cfg.minibatches` optimizer steps; returns the mean update stats over processes."""
    sums, count, first_log_ratio, micro_index = torch.zeros(len(UPDATE_STATS)), 0, None, 0
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for epoch in range(cfg.epochs):
        n = batch.rollout.scores.shape[0]
        minibatches = first_epoch if epoch == 0 else micro_batches(n, cfg, step, epoch, rank)
        for minibatch in minibatches:
            for a, index in enumerate(minibatch):
                no_sync = getattr(net, "no_sync", None)
                sync = nullcontext() if a == len(minibatch) - 1 or no_sync is None else no_sync()
                ptx = ptx_batch(micro_index) if ptx_batch is not None else None
                with sync:
                    stats, log_ratio = _micro_step(net, batch, index, cfg, ptx)
                sums, count, micro_index = sums + stats, count + 1, micro_index + 1
                first_log_ratio = log_ratio if first_log_ratio is None else first_log_ratio
            if cfg.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    totals = sum_over_processes(torch.cat([sums, torch.tensor([float(count)])]).double())
    metrics = dict(zip(UPDATE_STATS, (totals[:-1] / totals[-1]).tolist(), strict=True))
    metrics["policy/first_max_abs_log_ratio"] = float(first_log_ratio) if first_log_ratio is not None else 0.0
    return metrics
