"""Reward-model training (InstructGPT section 3.5): K-way rankings, one forward per distinct completion per step.

Micro-batch order: optimizer step s of an epoch consumes the global batches ``s*A*W ... (s+1)*A*W - 1`` (A =
gradient accumulation, W = processes); process r takes batch ``s*A*W + a*W + r`` in accumulation round a. So one
process with A = 2 and two DDP processes with A = 1 see the same batches in the same steps. Batches that do not
fill a last step are dropped (each epoch reshuffles). Under torchrun the caller initialises the process group and
places the model on its device; only rank 0 reports metrics and writes checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from trainer.common.chat import PromptLike, to_messages
from trainer.common.distributed import sum_over_processes, world
from trainer.common.loop import MetricsCallback, TrainResult, run_training, steps_per_epoch
from trainer.common.precision import bf16_autocast
from trainer.common.reward_model import center_rewards, encode_completion, score_sequences
from trainer.reward.config import RewardConfig
from trainer.reward.data import (
    EncodedTask,
    RewardBatch,
    TaskGroup,
    collate_rankings,
    encode_tasks,
    length_grouped_batches,
)
from trainer.reward.forward import RewardForward
from trainer.reward.losses import gather_group_rewards, ranking_loss
from trainer.reward.metrics import RewardEvaluation, ScoredRanking, evaluate_rankings
from trainer.reward.shared import collate_shared_prompt

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

UNTRUNCATED = 1 << 30


@dataclass
class _Plan:
    """Where every micro-batch of every step comes from."""

    tasks: list[EncodedTask]
    cfg: RewardConfig
    pad_token_id: int
    rank: int
    world_size: int
    _orders: dict[int, list[list[int]]] = field(default_factory=dict)

    @property
    def per_step(self) -> int:
        return self.cfg.grad_accum_steps * self.world_size

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(len(self.tasks), self.cfg.batch_size, self.per_step)

    def micro_batches(self, step: int) -> list[RewardBatch]:
        """This process's micro-batches for global optimizer step `step`."""
        epoch, in_epoch = divmod(step, self.steps_per_epoch)
        if epoch not in self._orders:
            lengths = [t.n_tokens for t in self.tasks]
            self._orders = {
                epoch: length_grouped_batches(lengths, self.cfg.batch_size, seed=self.cfg.seed, epoch=epoch)
            }
        order = self._orders[epoch]
        first = in_epoch * self.per_step
        chosen = [order[first + a * self.world_size + self.rank] for a in range(self.cfg.grad_accum_steps)]
        return [self.collate([self.tasks[i] for i in batch]) for batch in chosen]

    def collate(self, tasks: list[EncodedTask]) -> RewardBatch:
        cfg = self.cfg
        if cfg.shared_prompt:
            return collate_shared_prompt(
                tasks,
                pad_token_id=self.pad_token_id,
                max_length=cfg.max_length,
                use_weights=cfg.weight_by_agreement,
                pad_to_multiple_of=cfg.pad_to_multiple_of,
            )
        return collate_rankings(
            tasks,
            pad_token_id=self.pad_token_id,
            use_weights=cfg.weight_by_agreement,
            pad_to_multiple_of=cfg.pad_to_multiple_of,
        )


def _train_step(
    net: nn.Module, batches: list[RewardBatch], cfg: RewardConfig, optimizer: torch.optim.Optimizer
) -> torch.Tensor:
    """Forward/backward every micro-batch, step; return summed stats [loss, correct, pairs, margin*pairs, tokens]."""
    device = next(net.parameters()).device
    sums = torch.zeros(5, dtype=torch.float64, device=device)
    for i, batch in enumerate(batches):
        batch = batch.to(device)
        last = i == len(batches) - 1
        no_sync = getattr(net, "no_sync", None)
        sync = nullcontext() if last or no_sync is None else no_sync()
        autocast = bf16_autocast(cfg.bf16, device)
        with sync:
            with autocast:
                rewards = net(
                    batch.input_ids, batch.attention_mask, batch.prompt_ids, batch.prompt_mask, batch.prompt_of_row
                )
            grouped = gather_group_rewards(rewards.float(), batch.group_index)  # (G, K)
            loss, stats = ranking_loss(grouped, batch.ranks, batch.weights)
            (loss / len(batches)).backward()
        pairs = stats["rm/pairs"]
        sums += torch.stack(
            [loss.detach(), stats["rm/correct"], pairs, stats["rm/margin"] * pairs, pairs.new_tensor(batch.n_tokens)]
        ).double()
    if cfg.max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return sums


def _step_metrics(sums: torch.Tensor, n_micro: int, seconds: float, lr: float, epoch: float) -> dict[str, float]:
    """This process's summed stats -> the numbers on the metrics chart (summed over every process)."""
    n_micro *= world()[1]
    loss, correct, pairs, margin_sum, tokens = sum_over_processes(sums).tolist()
    return {
        "loss/ranking": loss / n_micro,
        "rm/accuracy": correct / max(pairs, 1.0),
        "rm/pairs": pairs,
        "rm/margin": margin_sum / max(pairs, 1.0),
        "perf/tokens_per_s": tokens / max(seconds, 1e-9),
        "lr": lr,
        "epoch": epoch,
    }


def train_reward_model(
    cfg: RewardConfig,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train: Sequence[TaskGroup],
    *,
    on_metrics: MetricsCallback | None = None,
    checkpoint_dir: Path | None = None,
    checkpoint_every: int = 0,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train `model` in place on the rankings of `train`, resuming from `checkpoint_dir` when it holds a state."""
    rank, world_size = world()
    encode_length = UNTRUNCATED if cfg.shared_prompt else cfg.max_length  # shared mode truncates when collating
    plan = _Plan(encode_tasks(train, tokenizer, encode_length), cfg, int(tokenizer.pad_token_id), rank, world_size)
    total = plan.steps_per_epoch * cfg.epochs
    if total == 0:
        raise ValueError(f"{len(plan.tasks)} usable tasks fill no optimizer step of {plan.per_step} batches")

    def step_fn(step: int, net: nn.Module, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        return _train_step(net, plan.micro_batches(step), cfg, optimizer)

    def metrics_fn(sums: torch.Tensor, seconds: float, lr: float, epoch: float) -> dict[str, float]:
        return _step_metrics(sums, cfg.grad_accum_steps, seconds, lr, epoch)

    return run_training(
        model, RewardForward(model), cfg, total_steps=total, per_epoch=plan.steps_per_epoch, config=asdict(cfg),
        step_fn=step_fn, metrics_fn=metrics_fn, decay=cfg.decay, on_metrics=on_metrics, checkpoint_dir=checkpoint_dir,
        checkpoint_every=checkpoint_every, should_stop=should_stop,
    )  # fmt: skip


def score_tasks(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, tasks: Sequence[TaskGroup], *, max_length: int = 512
) -> list[ScoredRanking]:
    """Reward every completion of every task once, and pair the rewards with each ranking of it."""
    encoded = encode_tasks(tasks, tokenizer, max_length)
    sequences = [s for t in encoded for s in t.sequences]
    was_training = model.training
    model.eval()
    flat = score_sequences(model, sequences, pad_token_id=int(tokenizer.pad_token_id)).tolist()
    model.train(was_training)
    scored, start = [], 0
    for task in encoded:
        task_rewards = flat[start : start + len(task.sequences)]
        start += len(task.sequences)
        scored += [ScoredRanking(task_rewards, r.ranks, r.labeler) for r in task.rankings]
    return scored


def center_on_sft(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    samples: Sequence[tuple[PromptLike, str]],
    *,
    max_length: int = 512,
) -> float:
    """Shift the reward offset so the SFT policy's (prompt, completion) samples have mean reward 0; return it."""
    sequences = [encode_completion(tokenizer, to_messages(p), c, max_length) for p, c in samples]
    return center_rewards(model, sequences, pad_token_id=int(tokenizer.pad_token_id))


def evaluate_reward_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    tasks: Sequence[TaskGroup],
    *,
    max_length: int = 512,
    held_out_labelers: Sequence[str] = (),
) -> RewardEvaluation:
    """Validation accuracy, log loss, per-K accuracy, calibration and held-out-labeler accuracy on `tasks`."""
    scored = score_tasks(model, tokenizer, tasks, max_length=max_length)
    return evaluate_rankings(scored, held_out_labelers=set(held_out_labelers))
