"""The sampling job: K completions per prompt from a policy, one ranking task per prompt.

Prompts are worked through in chunks; each chunk's completions, tasks and the checkpoint commit in one transaction,
so a resumed attempt neither repeats nor skips one. The steps are in `trainer/sampling/job.py`; torch loads only
when a job runs.
"""

from __future__ import annotations

from app.models import JobKind
from app.schemas.jobs import SampleParams
from trainer.common.context import JobContext

KIND = JobKind.sample


def run(ctx: JobContext, params: SampleParams) -> None:
    """Sample `k` completions for every chosen prompt and create one ranking task per prompt."""
    from trainer.sampling.job import sample_job

    sample_job(ctx, params)
