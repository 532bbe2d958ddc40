"""The optimizer every supervised trainer uses (reward, SFT, DPO): AdamW over the trainable parameters, a linear
warm-up, then a cosine (or linear, or no) decay towards a floor."""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn


def lr_factor(step: int, *, warmup: int, total: int, decay: str, min_ratio: float) -> float:
    """Multiplier of the peak learning rate for optimizer step `step` (0-based)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if decay == "constant":
        return 1.0
    shape = 1.0 - progress if decay == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
    return min_ratio + (1.0 - min_ratio) * shape


def make_optimizer(
    model: nn.Module,
    *,
    learning_rate: float,
    weight_decay: float,
    warmup_ratio: float,
    total_steps: int,
    min_lr_ratio: float,
    decay: str = "cosine",
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over `model`'s trainable parameters and its warm-up/decay schedule over `total_steps` steps."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    warmup = math.ceil(warmup_ratio * total_steps)
    factor = partial(lr_factor, warmup=warmup, total=total_steps, decay=decay, min_ratio=min_lr_ratio)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
