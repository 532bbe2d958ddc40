"""Params of the training job kinds (torch-free: the web side validates them, the worker trains with them)."""

from __future__ import annotations

from pydantic import Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import ModelKind, ModelVersion
from app.schemas.params import RankingFilter


class TrainRewardParams(RankingFilter):
    """Train a reward model on the accumulated rankings (InstructGPT: every ranking of K outputs is one element)."""

    active_only: bool = True
    """Only rankings by labelers whose account is active (researchers' rankings are always kept)."""

    sft_version: int | None = Field(default=None, ge=1)
    """SFT ModelVersion whose backbone the reward model starts from; default: the newest SFT version."""
    weight_by_agreement: bool = False
    """Weight each labeler's rankings by their agreement with researchers (researchers weigh 1)."""
    heldout_labeler_share: float = Field(default=0.2, ge=0.0, le=0.5)
    """Share of labelers (by pseudonym) whose rankings are kept out of training to measure generalisation to
    new labelers; none are held out when fewer than 5 labelers ranked."""
    epochs: int = Field(default=1, ge=1, le=20)
    """Passes over the training rankings (InstructGPT trained one epoch: more overfits)."""
    learning_rate: float = Field(default=9e-6, gt=0.0, le=1e-2)
    """Peak AdamW learning rate (InstructGPT: 9e-6)."""
    batch_size: int = Field(default=8, ge=1, le=1024)
    """Tasks per micro-batch; every ranking of a task shares the forward passes of its outputs."""
    grad_accum_steps: int = Field(default=1, ge=1, le=1024)
    """Micro-batches per optimizer step."""
    warmup_ratio: float = Field(default=0.05, ge=0.0, le=0.5)
    """Share of the optimizer steps spent warming the learning rate up linearly; then cosine decay to 10%."""
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0)
    """AdamW weight decay."""
    max_length: int = Field(default=512, ge=16, le=32768)
    """Most tokens of prompt + output; longer prompts are cut from the left."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about a third more compute."""
    shared_prompt: bool = False
    """Encode each task's prompt once and let its K outputs attend to that one pass: the same rewards with fewer
    tokens (fastest with long prompts); not with gradient_checkpointing."""
    processes: int | None = Field(default=None, ge=1, le=64)
    """Processes to train on together under torchrun (DDP), one per GPU; default: every GPU of the worker (on a
    CPU worker 1; more runs gloo on CPU, for tests)."""
    checkpoint_every: int = Field(default=50, ge=1, le=100_000)
    """Optimizer steps between resumable checkpoints."""
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    """Seed of the head's initialisation, the data order and the held-out labelers."""

    @model_validator(mode="after")
    def _compatible(self) -> TrainRewardParams:
        if self.shared_prompt and self.gradient_checkpointing:
            raise ValueError("shared_prompt and gradient_checkpointing cannot be combined; choose one")
        return self

    def check_references(self, session: Session) -> None:
        """The backbone is a registered SFT model (or one exists when none is named)."""
        if self.sft_version is not None:
            model = session.get(ModelVersion, self.sft_version)
            if model is None or model.kind != ModelKind.sft:
                raise InvalidInput(f"params.sft_version: no SFT model with id {self.sft_version}")
        elif session.scalar(select(ModelVersion.id).where(ModelVersion.kind == ModelKind.sft).limit(1)) is None:
            raise InvalidInput(
                "no SFT model is registered to start the reward model from: run `ranklab demo` or "
                "`ranklab models add PATH --kind sft`"
            )
