"""Params of the supervised fine-tuning job (`train_sft`, step 1 of the method); torch-free."""

from __future__ import annotations

from datetime import UTC

from pydantic import Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import Demonstration, DemonstrationStatus, ModelKind
from app.schemas.fields import Id, UtcMoment
from app.schemas.params import MAX_MEMORY_GB_HELP, JobParams, LoraParams
from app.schemas.training import check_version

SFT_BASE_KINDS = (ModelKind.base, ModelKind.sft)


class TrainSftParams(JobParams):
    """Fine-tune a model on the accepted demonstrations (cross-entropy on the assistant's tokens only)."""

    base_version: Id | None = None
    """Model to fine-tune: a `base` version (`ranklab models add PATH --kind base`) or an SFT version; default: the
    newest base model, else the newest SFT model."""
    active_only: bool = True
    """Only demonstrations by labelers whose account is active (researchers' are always kept)."""
    include_best_ranked: bool = False
    """Also train on the output each ranking placed alone at rank 1 (best-of-K fine-tuning, like Llama 2's rejection
    sampling): more data that the current model can already write, chosen by people."""
    since: UtcMoment | None = None
    """Only demonstrations written at or after this time (ISO 8601; UTC when no zone is given)."""
    until: UtcMoment | None = None
    """Only demonstrations written before this time."""
    epochs: int = Field(default=2, ge=1, le=50)
    """Passes over the training demonstrations."""
    learning_rate: float = Field(default=2e-5, gt=0.0, le=1e-2)
    """Peak AdamW learning rate; linear warm-up then cosine decay to 10%."""
    batch_size: int = Field(default=8, ge=1, le=4096)
    """Demonstrations per micro-batch (with packing: up to this many, in one row of at most `max_length` x
    `batch_size` tokens)."""
    grad_accum_steps: int = Field(default=1, ge=1, le=1024)
    """Micro-batches per optimizer step."""
    warmup_ratio: float = Field(default=0.03, ge=0.0, le=0.5)
    """Share of the optimizer steps spent warming the learning rate up linearly."""
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0)
    """AdamW weight decay."""
    max_length: int = Field(default=1024, ge=16, le=32768)
    """Most tokens of one conversation + answer; longer conversations lose their earliest turns' tokens."""
    packing: bool = True
    """Padding-free packing: a micro-batch is one row of concatenated sequences whose positions restart per
    sequence (no padding tokens computed); falls back to padding where the attention implementation cannot."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about a third more compute."""
    processes: int | None = Field(default=None, ge=1, le=64)
    """Processes under torchrun (DDP), one per GPU; default: every GPU of the worker (a CPU worker: 1)."""
    checkpoint_every: int = Field(default=50, ge=1, le=100_000)
    """Optimizer steps between resumable checkpoints."""
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    """Seeds the data order."""
    lora: LoraParams | None = None
    """Train LoRA adapters instead of every weight (the version is saved merged, the adapter in `adapter/`);
    none: full fine-tuning."""
    max_memory_gb: float | None = Field(default=None, gt=0.0, le=1_000_000.0, description=MAX_MEMORY_GB_HELP)

    @model_validator(mode="after")
    def _ordered_dates(self) -> TrainSftParams:
        if self.since is not None and self.until is not None:
            since, until = (d if d.tzinfo else d.replace(tzinfo=UTC) for d in (self.since, self.until))
            if since >= until:
                raise ValueError("since must be before until")
        return self

    def check_references(self, session: Session) -> None:
        """The base is a base or SFT model (or one exists), and there is something to train on."""
        check_version(session, self.base_version, SFT_BASE_KINDS, "base_version")
        accepted = select(Demonstration.id).where(Demonstration.status == DemonstrationStatus.accepted).limit(1)
        if not self.include_best_ranked and session.scalar(accepted) is None:
            raise InvalidInput(
                "there is no accepted demonstration to train on yet: create demonstration tasks, let labelers write "
                "them and accept some on /demonstrations (or set include_best_ranked)"
            )
