"""The reward-model job: rankings -> K-way training -> centring on SFT samples -> evaluation -> a `reward` version.

torch loads inside `run` (worker discovery imports this module). The steps are in `trainer/reward/job.py`.
"""

from __future__ import annotations

from app.models import JobKind
from app.schemas.training import TrainRewardParams
from trainer.common.context import JobContext, NewModelVersion

KIND = JobKind.train_reward


def run(ctx: JobContext, params: TrainRewardParams) -> NewModelVersion:
    """Train, evaluate and save a reward model; the worker registers it as the job finishes."""
    from trainer.reward.job import train_reward_job

    return train_reward_job(ctx, params)
