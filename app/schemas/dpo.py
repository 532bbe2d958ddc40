"""Params of the direct preference optimisation job (`train_dpo`); torch-free."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from sqlalchemy.orm import Session

from app.models import ModelKind
from app.schemas.fields import Id
from app.schemas.params import MAX_MEMORY_GB_HELP, LoraParams, RankingFilter
from app.schemas.training import check_version


class TrainDpoParams(RankingFilter):
    """Train a policy on the rankings directly (no reward model, no generation while training): each ranking's K
    outputs get one forward pass each, every pair of its buckets is scored from those K values."""

    active_only: bool = True
    """Only rankings by labelers whose account is active (researchers' rankings are always kept)."""
    policy_version: Id | None = None
    """SFT or policy version to start from; default: the newest policy, else the newest SFT model."""
    reference_version: Id | None = None
    """The frozen reference the implicit reward is measured against; default: the starting version."""
    loss_type: Literal["dpo", "ipo", "listwise"] = "dpo"
    """dpo: -log sigmoid of the implicit-reward margin over every pair of buckets; ipo: its squared-loss variant;
    listwise: Plackett-Luce over the buckets (ties share a risk set)."""
    beta: float = Field(default=0.1, gt=0.0, le=100.0)
    """Strength of the pull towards the reference (the implicit reward is beta times the log-ratio)."""
    epochs: int = Field(default=1, ge=1, le=50)
    """Passes over the training rankings."""
    learning_rate: float = Field(default=1e-6, gt=0.0, le=1e-2)
    """Peak AdamW learning rate (TRL's default); linear warm-up then cosine decay to 10%."""
    batch_size: int = Field(default=4, ge=1, le=1024)
    """Tasks per micro-batch (every ranking of a task shares its K forward passes)."""
    grad_accum_steps: int = Field(default=1, ge=1, le=1024)
    """Micro-batches per optimizer step."""
    warmup_ratio: float = Field(default=0.1, ge=0.0, le=0.5)
    """Share of the optimizer steps spent warming the learning rate up linearly."""
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0)
    """AdamW weight decay."""
    max_length: int = Field(default=1024, ge=16, le=32768)
    """Most tokens of conversation + output; longer conversations lose their earliest tokens."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about a third more compute."""
    kl_prompts: int = Field(default=32, ge=0, le=10_000)
    """Validation prompts on which the trained policy samples once at the end to estimate its KL to the reference
    (0 skips it)."""
    kl_response_length: int = Field(default=64, ge=1, le=4096)
    """Most tokens of each of those samples."""
    processes: int | None = Field(default=None, ge=1, le=64)
    """Processes under torchrun (DDP), one per GPU; default: every GPU of the worker (a CPU worker: 1)."""
    checkpoint_every: int = Field(default=50, ge=1, le=100_000)
    """Optimizer steps between resumable checkpoints."""
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    """Seeds the data order, the held-back validation and the KL samples."""
    lora: LoraParams | None = None
    """Train LoRA adapters instead of every weight; when the reference is the starting version it is the policy
    itself with its adapters off (one copy of the weights); none: full fine-tuning."""
    max_memory_gb: float | None = Field(default=None, gt=0.0, le=1_000_000.0, description=MAX_MEMORY_GB_HELP)

    def check_references(self, session: Session) -> None:
        """The start and the reference are SFT or policy versions (or such a version exists)."""
        check_version(session, self.policy_version, (ModelKind.sft, ModelKind.policy), "policy_version")
        if self.reference_version is not None:
            check_version(session, self.reference_version, (ModelKind.sft, ModelKind.policy), "reference_version")
