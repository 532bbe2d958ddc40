"""A worker process with a slow, checkpointing test handler, for the SIGKILL test."""

from __future__ import annotations

import time

from sqlalchemy.orm import sessionmaker

from app.config import Settings
from app.db import make_engine
from app.models import JobKind
from app.schemas.jobs import ExportParams
from app.services import jobs as job_service
from trainer.context import JobContext
from trainer.worker import WorkerConfig, work

STEPS = 30


def slow_steps(ctx: JobContext, params: ExportParams) -> None:
    """Steps 0..STEPS-1; each step's metric point and the checkpoint commit together."""
    step = int(ctx.checkpoint or 0)
    while step < STEPS:
        ctx.check_cancelled()
        time.sleep(0.1)
        with ctx.transaction() as session:
            job_service.append_metrics(ctx.owned(session), point={"step": step, "attempt": ctx.attempt})
            ctx.save_checkpoint(session, str(step + 1), progress=(step + 1) / STEPS)
        step += 1


HANDLERS = {JobKind.export: slow_steps}


def main() -> None:
    settings = Settings()
    sessions = sessionmaker(bind=make_engine(settings.sqlalchemy_url), expire_on_commit=False)
    work(WorkerConfig.from_settings(settings, once=True, run_scheduler=False), sessions, settings, handlers=HANDLERS)


if __name__ == "__main__":
    main()
