"""The reward model's training settings (one dataclass, a docstring per field).

The settings a `train_reward` job exposes take their defaults from its params (`TrainRewardParams`, the one source:
`trainer.common.params`); `RewardConfig.from_params` builds the config from a job's validated params. The rest are
trainer knobs with their own defaults here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from app.schemas.training import TrainRewardParams
from trainer.common.params import config_from_params, job_default


def _job(name: str) -> Any:
    return job_default(TrainRewardParams, name)


@dataclass(frozen=True)
class RewardConfig:
    """How the reward model is trained."""

    learning_rate: float = _job("learning_rate")
    """Peak AdamW learning rate (InstructGPT's 6B RM used 9e-6)."""
    weight_decay: float = _job("weight_decay")
    """AdamW decoupled weight decay."""
    warmup_ratio: float = _job("warmup_ratio")
    """Fraction of the optimizer steps spent warming the learning rate up linearly from 0."""
    decay: Literal["cosine", "linear", "constant"] = "cosine"
    """Learning-rate decay after warm-up, towards `min_lr_ratio * learning_rate`."""
    min_lr_ratio: float = 0.1
    """Final learning rate as a fraction of the peak."""
    batch_size: int = _job("batch_size")
    """Tasks per micro-batch per process (each task brings all its rankings and K completions)."""
    grad_accum_steps: int = _job("grad_accum_steps")
    """Micro-batches per optimizer step per process."""
    epochs: int = _job("epochs")
    """Passes over the training tasks (InstructGPT: 1; more overfits)."""
    max_length: int = _job("max_length")
    """Most tokens of prompt + completion; longer ones lose the start of the prompt."""
    max_grad_norm: float | None = 1.0
    """Gradient clipping by global norm; None disables it."""
    seed: int = _job("seed")
    """Seeds the batch order (per epoch) and every generator."""
    bf16: bool = True
    """bf16 autocast on CUDA (weights and optimizer stay float32); on CPU only with `RANKLAB_CPU_BF16`."""
    gradient_checkpointing: bool = _job("gradient_checkpointing")
    """Recompute activations in the backward pass: less memory, about 30% slower."""
    weight_by_agreement: bool = _job("weight_by_agreement")
    """Weight each ranking by `RankingRecord.weight` (e.g. labeler agreement) instead of 1."""
    pad_to_multiple_of: int = 1
    """Pad batch width to a multiple of this (8 suits tensor cores)."""
    shared_prompt: bool = _job("shared_prompt")
    """Encode each task's prompt once; its K completions attend to that one pass (same rewards, fewer tokens)."""

    def __post_init__(self) -> None:
        checks = [
            (self.learning_rate > 0, "learning_rate must be > 0"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)"),
            (0 <= self.min_lr_ratio <= 1, "min_lr_ratio must be in [0, 1]"),
            (self.batch_size >= 1 and self.grad_accum_steps >= 1, "batch_size and grad_accum_steps must be >= 1"),
            (self.epochs >= 1 and self.max_length >= 2, "epochs must be >= 1 and max_length >= 2"),
            (self.decay in ("cosine", "linear", "constant"), f"unknown decay {self.decay!r}"),
            (not (self.shared_prompt and self.gradient_checkpointing), "shared_prompt excludes gradient_checkpointing"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @classmethod
    def from_params(cls, params: TrainRewardParams, **overrides: Any) -> RewardConfig:
        """The config of a `train_reward` job: its params by name (then `overrides`, e.g. a smaller batch)."""
        return config_from_params(cls, params, **overrides)
