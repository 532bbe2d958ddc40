"""The optimizer-step loop the supervised trainers share (reward model, SFT, DPO).

Each trainer brings what is its own: the module it differentiates (`net`, which DDP wraps when there are several
processes), one optimizer step (`step_fn`: forward/backward its micro-batches, clip, step; returns its sums) and how
those sums become the chart's metrics (`metrics_fn`). The loop does the rest the same way for all three:
activation checkpointing, AdamW with its schedule, resume from a checkpoint (or seed everything on a fresh start),
an agreed stop on every process (checkpoint, then return), metrics from rank 0, and checkpoints every
`checkpoint_every` steps and at the end (a job killed before saving its model then resumes to "done" at once).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from trainer.common.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint, seed_everything
from trainer.common.distributed import agreed_stop, barrier, world
from trainer.common.models import enable_activation_checkpointing
from trainer.common.optim import make_optimizer

MetricsCallback = Callable[[int, dict[str, float]], None]
StepFn = Callable[[int, nn.Module, torch.optim.Optimizer], Any]
"""(step index, the module to differentiate, the optimizer) -> this process's sums of the step."""
MetricsFn = Callable[[Any, float, float, float], dict[str, float]]
"""(the step's sums, its seconds, its learning rate, the epoch reached) -> the chart's numbers."""


class LoopSettings(Protocol):
    """What the loop reads from a trainer's config (RewardConfig, SftConfig, DpoConfig)."""

    @property
    def learning_rate(self) -> float: ...
    @property
    def weight_decay(self) -> float: ...
    @property
    def warmup_ratio(self) -> float: ...
    @property
    def min_lr_ratio(self) -> float: ...
    @property
    def gradient_checkpointing(self) -> bool: ...
    @property
    def seed(self) -> int: ...


@dataclass(frozen=True)
class TrainResult:
    """What a (possibly interrupted) training call did."""

    steps: int
    """Optimizer steps done in total, resumed ones included."""
    total_steps: int
    stopped: bool
    """True when `should_stop` ended the run early (a checkpoint was written when a folder was given)."""
    metrics: dict[str, float]
    """The last step's metrics."""


def steps_per_epoch(items: int, batch_size: int, per_step: int) -> int:
    """Optimizer steps an epoch fills: batches of `batch_size` (the last one may be short), `per_step` batches a step
    (accumulation x processes); batches that do not fill a last step are dropped (each epoch reshuffles)."""
    return -(-items // batch_size) // per_step


def run_training(
    model: Any,
    net: nn.Module,
    cfg: LoopSettings,
    *,
    total_steps: int,
    per_epoch: int,
    config: dict[str, Any],
    step_fn: StepFn,
    metrics_fn: MetricsFn,
    decay: str = "cosine",
    on_metrics: MetricsCallback | None = None,
    checkpoint_dir: Path | None = None,
    checkpoint_every: int = 0,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train `model` (through `net`, a module around it) for `total_steps` optimizer steps, resuming when
    `checkpoint_dir` holds a state whose `config` matches (a different config refuses to resume)."""
    rank, world_size = world()
    if cfg.gradient_checkpointing:
        enable_activation_checkpointing(model)
        model.config.use_cache = False
    optimizer, scheduler = make_optimizer(
        model, learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio,
        total_steps=total_steps, min_lr_ratio=cfg.min_lr_ratio, decay=decay,
    )  # fmt: skip
    config = config | {"world_size": world_size}
    step = 0
    if checkpoint_dir is not None and has_checkpoint(checkpoint_dir):
        step = load_checkpoint(checkpoint_dir, model=model, optimizer=optimizer, scheduler=scheduler, config=config)
    else:
        seed_everything(cfg.seed)
    model.train()
    if world_size > 1:
        net = nn.parallel.DistributedDataParallel(net)
    metrics: dict[str, float] = {}

    def checkpoint() -> None:
        if checkpoint_dir is not None and rank == 0:
            save_checkpoint(checkpoint_dir, model=model, optimizer=optimizer, scheduler=scheduler, step=step,
                            config=config)  # fmt: skip
        barrier()

    while step < total_steps:
        if agreed_stop(should_stop):
            checkpoint()
            return TrainResult(step, total_steps, True, metrics)
        started = time.perf_counter()
        lr = float(scheduler.get_last_lr()[0])
        sums = step_fn(step, net, optimizer)
        scheduler.step()
        step += 1
        metrics = metrics_fn(sums, time.perf_counter() - started, lr, step / per_epoch)
        if on_metrics is not None and rank == 0:
            on_metrics(step, metrics)
        if (checkpoint_every and step % checkpoint_every == 0) or step == total_steps:
            checkpoint()
    return TrainResult(step, total_steps, False, metrics)
