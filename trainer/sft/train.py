"""Supervised fine-tuning on demonstrations (step 1 of the method): cross-entropy on the answer tokens only.

Micro-batch order as in the reward trainer: optimizer step s of an epoch consumes the epoch's batches
``s*A*W ... (s+1)*A*W - 1`` (A = gradient accumulation, W = processes), process r taking ``s*A*W + a*W + r`` in
round a, so one process with A = 2 and two DDP processes with A = 1 take the same steps. The loss of a step is the
mean over every answer token of the step (all micro-batches and processes), whatever the split into micro-batches.
Under torchrun the caller initialises the process group and places the model; rank 0 reports and checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from app.schemas.sft import TrainSftParams
from trainer.common.distributed import sum_over_processes, world
from trainer.common.loop import MetricsCallback, TrainResult, run_training, steps_per_epoch
from trainer.common.params import config_from_params, job_default
from trainer.common.precision import bf16_autocast
from trainer.sft.data import SftBatch, SftExample, collate_packed, collate_padded, epoch_batches
from trainer.sft.forward import AnswerLoss


def _job(name: str) -> Any:
    return job_default(TrainSftParams, name)


@dataclass(frozen=True)
class SftConfig:
    """How the model is fine-tuned (the settings a `train_sft` job exposes default to its params)."""

    learning_rate: float = _job("learning_rate")
    """Peak AdamW learning rate."""
    weight_decay: float = _job("weight_decay")
    """AdamW decoupled weight decay."""
    warmup_ratio: float = _job("warmup_ratio")
    """Fraction of the optimizer steps spent warming the learning rate up linearly."""
    min_lr_ratio: float = 0.1
    """Final learning rate of the cosine decay, as a fraction of the peak."""
    batch_size: int = _job("batch_size")
    """Sequences per micro-batch per process."""
    grad_accum_steps: int = _job("grad_accum_steps")
    """Micro-batches per optimizer step per process."""
    epochs: int = _job("epochs")
    """Passes over the training examples."""
    max_length: int = _job("max_length")
    """Most tokens per sequence (the data module cuts the prompt from the left)."""
    max_grad_norm: float | None = 1.0
    """Gradient clipping by global norm; None disables it."""
    packing: bool = _job("packing")
    """Padding-free rows (positions restart per sequence) instead of padded rows."""
    gradient_checkpointing: bool = _job("gradient_checkpointing")
    """Recompute activations in the backward pass: less memory, about a third more compute."""
    bf16: bool = True
    """bf16 autocast on CUDA (weights and optimizer stay float32); on CPU only with `RANKLAB_CPU_BF16`."""
    seed: int = _job("seed")
    """Seeds the batch order (per epoch) and every generator."""

    def __post_init__(self) -> None:
        checks = [
            (self.learning_rate > 0, "learning_rate must be > 0"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)"),
            (self.batch_size >= 1 and self.grad_accum_steps >= 1, "batch_size and grad_accum_steps must be >= 1"),
            (self.epochs >= 1 and self.max_length >= 2, "epochs must be >= 1 and max_length >= 2"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @classmethod
    def from_params(cls, params: TrainSftParams, **overrides: Any) -> SftConfig:
        """The config of a job's validated params (then `overrides`)."""
        return config_from_params(cls, params, **overrides)


@dataclass
class SftPlan:
    """Which examples every micro-batch of every optimizer step holds, on this process."""

    examples: Sequence[SftExample]
    cfg: SftConfig
    pad_token_id: int
    rank: int = 0
    world_size: int = 1

    @property
    def per_step(self) -> int:
        return self.cfg.grad_accum_steps * self.world_size

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(len(self.examples), self.cfg.batch_size, self.per_step)

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.cfg.epochs

    def step_batches(self, step: int) -> list[list[int]]:
        """Every process's micro-batches (example indexes) of optimizer step `step`, in global order."""
        epoch, in_epoch = divmod(step, self.steps_per_epoch)
        order = epoch_batches(len(self.examples), batch_size=self.cfg.batch_size, seed=self.cfg.seed, epoch=epoch)
        first = in_epoch * self.per_step
        return order[first : first + self.per_step]

    def micro_batches(self, step: int) -> tuple[list[SftBatch], int]:
        """This process's micro-batches of step `step`, and the answer tokens of the whole step (all processes)."""
        batches = self.step_batches(step)
        step_tokens = sum(self.examples[i].n_answer for batch in batches for i in batch)
        mine = [batches[a * self.world_size + self.rank] for a in range(self.cfg.grad_accum_steps)]
        return [self.collate([self.examples[i] for i in batch]) for batch in mine], step_tokens

    def collate(self, examples: Sequence[SftExample]) -> SftBatch:
        return collate_packed(examples) if self.cfg.packing else collate_padded(examples, pad_id=self.pad_token_id)


def _train_step(
    net: nn.Module, batches: list[SftBatch], step_tokens: int, cfg: SftConfig, optimizer: torch.optim.Optimizer
) -> torch.Tensor:
    """Forward/backward every micro-batch (loss normalised by the step's answer tokens), clip, step; returns the
    summed [loss * tokens, answer tokens, computed tokens, examples] of this process."""
    device = next(net.parameters()).device
    sums = torch.zeros(4, dtype=torch.float64, device=device)
    scale = 1.0 / max(step_tokens, 1)
    for i, batch in enumerate(batches):
        batch = batch.to(device)
        no_sync = getattr(net, "no_sync", None)
        sync = nullcontext() if i == len(batches) - 1 or no_sync is None else no_sync()
        autocast = bf16_autocast(cfg.bf16, device)
        with sync:
            with autocast:
                loss_sum = net(batch)
            # DDP averages gradients over processes: scale back up so the step is the mean over all answer tokens
            (loss_sum * scale * world()[1]).backward()
        sums += torch.tensor(
            [float(loss_sum.detach()), len(batch.labels), batch.n_tokens, batch.n_examples], device=device
        ).double()
    if cfg.max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return sums


def _step_metrics(sums: torch.Tensor, seconds: float, lr: float, epoch: float) -> dict[str, float]:
    loss_sum, answer_tokens, tokens, examples = sum_over_processes(sums).tolist()
    loss = loss_sum / max(answer_tokens, 1.0)
    return {
        "loss/sft": loss,
        "sft/perplexity": math.exp(min(loss, 50.0)),
        "sft/answer_tokens": answer_tokens,
        "perf/tokens_per_s": tokens / max(seconds, 1e-9),
        "perf/examples_per_s": examples / max(seconds, 1e-9),
        "lr": lr,
        "epoch": epoch,
    }


def train_sft(
    cfg: SftConfig,
    model: Any,
    examples: Sequence[SftExample],
    *,
    pad_token_id: int,
    on_metrics: MetricsCallback | None = None,
    checkpoint_dir: Path | None = None,
    checkpoint_every: int = 0,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Fine-tune `model` in place on `examples`, resuming from `checkpoint_dir` when it holds a state."""
    rank, world_size = world()
    plan = SftPlan(examples, cfg, pad_token_id, rank, world_size)
    if plan.total_steps == 0:
        raise ValueError(
            f"{len(examples)} examples fill no optimizer step of {plan.per_step} micro-batches of {cfg.batch_size}: "
            "lower batch_size or grad_accum_steps, or add demonstrations"
        )

    def step_fn(step: int, net: nn.Module, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        batches, step_tokens = plan.micro_batches(step)
        return _train_step(net, batches, step_tokens, cfg, optimizer)

    return run_training(
        model, AnswerLoss(model), cfg, total_steps=plan.total_steps, per_epoch=plan.steps_per_epoch,
        config=asdict(cfg) | {"examples": len(examples)}, step_fn=step_fn, metrics_fn=_step_metrics,
        on_metrics=on_metrics, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
        should_stop=should_stop,
    )  # fmt: skip


@torch.no_grad()
def validation_loss(
    model: Any, examples: Sequence[SftExample], *, pad_token_id: int, batch_size: int = 8, packing: bool = True
) -> dict[str, float]:
    """Mean answer-token cross-entropy and perplexity on `examples` (the validation split's demonstrations)."""
    if not examples:
        return {}
    was_training = model.training
    model.eval()
    loss = AnswerLoss(model)
    device = next(model.parameters()).device
    total, tokens = 0.0, 0
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        batch = (collate_packed(chunk) if packing else collate_padded(chunk, pad_id=pad_token_id)).to(device)
        total += float(loss(batch))
        tokens += len(batch.labels)
    model.train(was_training)
    mean = total / max(tokens, 1)
    return {"val/loss": mean, "val/perplexity": math.exp(min(mean, 50.0)), "val/answer_tokens": float(tokens)}
