"""DPO training from K-way rankings: one policy pass per completion, the reference's log-probs read from the tasks.

Micro-batch order as in the reward trainer: optimizer step s of an epoch consumes the epoch's batches
``s*A*W ... (s+1)*A*W - 1`` (A = gradient accumulation, W = processes), process r taking ``s*A*W + a*W + r`` in round
a, so one process with A = 2 and two DDP processes with A = 1 take the same steps. A step's loss is the mean of its
micro-batches' losses (each the mean over its rankings). Under torchrun the caller initialises the process group;
rank 0 reports and checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from app.schemas.dpo import TrainDpoParams
from trainer.common.distributed import sum_over_processes, world
from trainer.common.loop import MetricsCallback, TrainResult, run_training, steps_per_epoch
from trainer.common.packing import CompletionBatch, sequence_logprobs
from trainer.common.params import config_from_params, job_default
from trainer.common.precision import bf16_autocast
from trainer.common.rankings import length_grouped_batches
from trainer.dpo.data import DpoBatch, DpoTask, collate_dpo, gather_groups
from trainer.dpo.losses import DpoLossType, dpo_loss

SUMMED = ("dpo/correct", "dpo/pairs")
"""Stats added up over micro-batches and processes; the others are averaged."""
_StepSums = tuple[dict[str, torch.Tensor], int]
"""A step's summed stats on this process, and the rankings of the step (all processes)."""


def _job(name: str) -> Any:
    return job_default(TrainDpoParams, name)


@dataclass(frozen=True)
class DpoConfig:
    """How the policy is trained (the settings a `train_dpo` job exposes default to its params)."""

    loss_type: DpoLossType = _job("loss_type")
    """dpo (sigmoid), ipo or listwise (Plackett-Luce over the buckets)."""
    beta: float = _job("beta")
    """The implicit reward is beta times the log-ratio to the reference."""
    learning_rate: float = _job("learning_rate")
    """Peak AdamW learning rate."""
    weight_decay: float = _job("weight_decay")
    """AdamW decoupled weight decay."""
    warmup_ratio: float = _job("warmup_ratio")
    """Fraction of the optimizer steps spent warming the learning rate up linearly."""
    min_lr_ratio: float = 0.1
    """Final learning rate of the cosine decay, as a fraction of the peak."""
    batch_size: int = _job("batch_size")
    """Tasks per micro-batch per process (each brings its K completions and every ranking of them)."""
    grad_accum_steps: int = _job("grad_accum_steps")
    """Micro-batches per optimizer step per process."""
    epochs: int = _job("epochs")
    """Passes over the training tasks."""
    max_length: int = _job("max_length")
    """Most tokens of conversation + completion."""
    max_grad_norm: float | None = 1.0
    """Gradient clipping by global norm; None disables it."""
    packing: bool = True
    """Padding-free rows (positions restart per sequence) instead of padded rows."""
    gradient_checkpointing: bool = _job("gradient_checkpointing")
    """Recompute activations in the backward pass: less memory, about a third more compute."""
    bf16: bool = True
    """bf16 autocast on CUDA (weights and optimizer stay float32); on CPU only with `RANKLAB_CPU_BF16`."""
    seed: int = _job("seed")
    """Seeds the batch order (per epoch) and every generator."""

    def __post_init__(self) -> None:
        if self.beta <= 0 or self.learning_rate <= 0:
            raise ValueError("beta and learning_rate must be > 0")
        if self.batch_size < 1 or self.grad_accum_steps < 1 or self.epochs < 1:
            raise ValueError("batch_size, grad_accum_steps and epochs must be >= 1")

    @classmethod
    def from_params(cls, params: TrainDpoParams, **overrides: Any) -> DpoConfig:
        """The config of a job's validated params (then `overrides`)."""
        return config_from_params(cls, params, **overrides)


class PolicyLogprobs(nn.Module):
    """(S,) summed completion log-probs of a batch's sequences (a module, so DDP can wrap the policy)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: CompletionBatch) -> torch.Tensor:
        return sequence_logprobs(self.model, batch)


@dataclass
class DpoPlan:
    """Which tasks every micro-batch of every optimizer step holds, on this process."""

    tasks: Sequence[DpoTask]
    cfg: DpoConfig
    pad_token_id: int
    rank: int = 0
    world_size: int = 1

    @property
    def per_step(self) -> int:
        return self.cfg.grad_accum_steps * self.world_size

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(len(self.tasks), self.cfg.batch_size, self.per_step)

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.cfg.epochs

    def micro_batches(self, step: int) -> list[DpoBatch]:
        epoch, in_epoch = divmod(step, self.steps_per_epoch)
        lengths = [t.n_tokens for t in self.tasks]
        order = length_grouped_batches(lengths, self.cfg.batch_size, seed=self.cfg.seed, epoch=epoch)
        first = in_epoch * self.per_step
        mine = [order[first + a * self.world_size + self.rank] for a in range(self.cfg.grad_accum_steps)]
        return [
            collate_dpo([self.tasks[i] for i in b], packing=self.cfg.packing, pad_id=self.pad_token_id) for b in mine
        ]


def batch_loss(net: nn.Module, batch: DpoBatch, cfg: DpoConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The DPO loss of one micro-batch and its stats."""
    device = batch.ranks.device
    with bf16_autocast(cfg.bf16, device):
        per_sequence = net(batch.sequences)
    policy = gather_groups(per_sequence.float(), batch.group_index)  # (G, K)
    return dpo_loss(policy, batch.reference_logps, batch.ranks, beta=cfg.beta, loss_type=cfg.loss_type)


def _train_step(
    net: nn.Module, batches: list[DpoBatch], cfg: DpoConfig, optimizer: torch.optim.Optimizer
) -> dict[str, torch.Tensor]:
    device = next(net.parameters()).device
    sums: dict[str, torch.Tensor] = {}
    for i, batch in enumerate(batches):
        batch = batch.to(device)
        no_sync = getattr(net, "no_sync", None)
        sync = nullcontext() if i == len(batches) - 1 or no_sync is None else no_sync()
        with sync:
            loss, stats = batch_loss(net, batch, cfg)
            (loss / len(batches)).backward()
        for key, value in stats.items():
            sums[key] = sums.get(key, torch.zeros((), dtype=torch.float64, device=device)) + value.double()
    if cfg.max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return sums


def step_metrics(
    sums: dict[str, torch.Tensor], n_micro: int, seconds: float, lr: float, epoch: float
) -> dict[str, float]:
    """Summed stats of every micro-batch (and process) -> the numbers on the metrics chart."""
    keys = sorted(sums)
    total = sum_over_processes(torch.stack([sums[k] for k in keys])).tolist()
    n = n_micro * world()[1]
    values = {k: v if k in SUMMED else v / n for k, v in zip(keys, total, strict=True)}
    values["dpo/accuracy"] = values.get("dpo/correct", 0.0) / max(values.get("dpo/pairs", 0.0), 1.0)
    return values | {"perf/rankings_per_s": 0.0, "lr": lr, "epoch": epoch, "perf/step_s": seconds}


def train_dpo(
    cfg: DpoConfig,
    policy: Any,
    tasks: Sequence[DpoTask],
    *,
    pad_token_id: int,
    on_metrics: MetricsCallback | None = None,
    checkpoint_dir: Path | None = None,
    checkpoint_every: int = 0,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train `policy` in place on `tasks` (their reference log-probs already filled), resuming from a checkpoint."""
    rank, world_size = world()
    plan = DpoPlan(tasks, cfg, pad_token_id, rank, world_size)
    if plan.total_steps == 0:
        raise ValueError(
            f"{len(tasks)} ranked tasks fill no optimizer step of {plan.per_step} micro-batches of {cfg.batch_size}: "
            "lower batch_size or grad_accum_steps, or rank more tasks"
        )

    def step_fn(step: int, net: nn.Module, optimizer: torch.optim.Optimizer) -> _StepSums:
        batches = plan.micro_batches(step)
        rankings = sum(b.group_index.shape[0] for b in batches) * world_size
        return _train_step(net, batches, cfg, optimizer), rankings

    def metrics_fn(out: _StepSums, seconds: float, lr: float, epoch: float) -> dict[str, float]:
        sums, rankings = out
        metrics = step_metrics(sums, cfg.grad_accum_steps, seconds, lr, epoch)
        metrics["perf/rankings_per_s"] = rankings / max(seconds, 1e-9)
        metrics["perf/comparisons_per_s"] = metrics.get("dpo/pairs", 0.0) / max(seconds, 1e-9)
        return metrics

    return run_training(
        policy, PolicyLogprobs(policy), cfg, total_steps=plan.total_steps, per_epoch=plan.steps_per_epoch,
        config=asdict(cfg) | {"tasks": len(tasks)}, step_fn=step_fn, metrics_fn=metrics_fn, on_metrics=on_metrics,
        checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, should_stop=should_stop,
    )  # fmt: skip


def _val_key(stat: str) -> str:
    """loss/dpo -> val/loss, dpo/margin -> val/margin, rewards/chosen -> val/rewards_chosen."""
    return "val/" + ("loss" if stat == "loss/dpo" else stat.replace("dpo/", "").replace("/", "_"))


@torch.no_grad()
def evaluate_dpo(policy: Any, tasks: Sequence[DpoTask], cfg: DpoConfig, *, pad_token_id: int) -> dict[str, float]:
    """Implicit-reward pair accuracy, margin and the chosen/rejected log-prob drift on held-out rankings."""
    if not tasks:
        return {}
    was_training = policy.training
    policy.eval()
    net, device = PolicyLogprobs(policy), next(policy.parameters()).device
    sums: dict[str, float] = {}
    n = 0
    for start in range(0, len(tasks), cfg.batch_size):
        batch = collate_dpo(tasks[start : start + cfg.batch_size], packing=cfg.packing, pad_id=pad_token_id)
        loss, stats = batch_loss(net, batch.to(device), cfg)
        for key, value in stats.items():
            sums[key] = sums.get(key, 0.0) + float(value)
        n += 1
    policy.train(was_training)
    out = {_val_key(k): v if k in SUMMED else v / n for k, v in sums.items()}
    out["val/accuracy"] = sums.get("dpo/correct", 0.0) / max(sums.get("dpo/pairs", 0.0), 1.0)
    return out
