"""The DPO job: rankings -> direct preference optimisation (one pass per output, reference cached) -> a `policy`.

torch loads inside `run` (worker discovery imports this module). The steps are in `trainer/dpo/job.py`.
"""

from __future__ import annotations

from app.models import JobKind
from app.schemas.dpo import TrainDpoParams
from trainer.common.context import JobContext, NewModelVersion

KIND = JobKind.train_dpo


def run(ctx: JobContext, params: TrainDpoParams) -> NewModelVersion:
    """Train a policy on the rankings with DPO; the worker registers it as the job finishes."""
    from trainer.dpo.job import train_dpo_job

    return train_dpo_job(ctx, params)
