"""The SFT job: accepted demonstrations -> supervised fine-tuning (answer tokens only) -> an `sft` version.

torch loads inside `run` (worker discovery imports this module). The steps are in `trainer/sft/job.py`.
"""

from __future__ import annotations

from app.models import JobKind
from app.schemas.sft import TrainSftParams
from trainer.common.context import JobContext, NewModelVersion

KIND = JobKind.train_sft


def run(ctx: JobContext, params: TrainSftParams) -> NewModelVersion:
    """Fine-tune a base or SFT model on the demonstrations; the worker registers it as the job finishes."""
    from trainer.sft.job import train_sft_job

    return train_sft_job(ctx, params)
