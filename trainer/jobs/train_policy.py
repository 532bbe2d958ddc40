"""The PPO job: a policy version fine-tuned against a reward model, kept near its SFT ancestor by a KL penalty.

torch loads inside `run` (worker discovery imports this module). The steps are in `trainer/ppo/job.py`.
"""

from __future__ import annotations

from app.models import JobKind
from app.schemas.training import TrainPolicyParams
from trainer.common.context import JobContext, NewModelVersion

KIND = JobKind.train_policy


def run(ctx: JobContext, params: TrainPolicyParams) -> NewModelVersion:
    """Run PPO and save the policy; the worker registers it as the job finishes."""
    from trainer.ppo.job import train_policy_job

    return train_policy_job(ctx, params)
