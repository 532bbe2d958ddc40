"""The evaluation job: a policy against its SFT ancestor (or any baseline) under a reward model, KL, alignment tax,
and optionally eval ranking tasks for a human win rate. torch loads inside `run`; the steps are in
`trainer/evaluation/job.py`."""

from __future__ import annotations

from app.models import JobKind
from app.schemas.training import EvaluateParams
from trainer.common.context import JobContext

KIND = JobKind.evaluate


def run(ctx: JobContext, params: EvaluateParams) -> None:
    """Evaluate and store the figures on the policy version."""
    from trainer.evaluation.job import evaluate_job

    evaluate_job(ctx, params)
