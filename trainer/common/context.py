"""What a job handler sees of its job (`JobContext`), how it ends early, and what it hands back.

Handlers (one module per kind in `trainer/jobs/`) and the worker loop (`trainer/worker.py`) both import this module;
it imports neither, so nothing imports in a circle. It stays torch-free.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.models import Job, JobStatus, ModelKind
from app.services import jobs as job_service
from app.services.jobs import Control, JobLost

logger = logging.getLogger("ranklab.worker")
PROGRESS_WRITE_S = 1.0
"""Progress reaches the database at most this often (the heartbeat also carries it)."""

__all__ = ["JobCancelled", "JobContext", "JobLost", "NewModelVersion", "WorkerStopping", "Handler"]


class JobCancelled(Exception):
    """A researcher cancelled the job; raised by `JobContext.check_cancelled` at a checkpoint."""


class WorkerStopping(Exception):
    """The worker was asked to stop (SIGTERM); the job goes back to the queue at its checkpoint."""


@dataclass(frozen=True)
class NewModelVersion:
    """A model folder a handler produced. The worker registers it in the transaction that finishes the job, so a
    job that cannot be finished (lost, crashed) registers nothing and a retry registers exactly one version."""

    kind: ModelKind
    name: str
    path: Path
    """A complete Hugging Face-format folder, written through `app.storage.atomic_dir` (see `JobContext.model_dir`)."""
    parent_id: int | None = None
    """The ModelVersion it was trained from."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """Final metrics shown in the registry (validation accuracy, KL, ...)."""


class JobContext:
    """What a handler sees of its job: checkpoint, device, and ways to report back (params come parsed, apart)."""

    def __init__(
        self,
        job: Job,
        *,
        worker_id: str,
        device: str,
        sessions: sessionmaker[Session],
        settings: Settings,
        stop: threading.Event | None = None,
    ) -> None:
        self.stop = stop or threading.Event()
        self.job_id, self.kind, self.attempt = job.id, job.kind, job.attempts
        self.checkpoint: str | None = job.checkpoint
        self.created_by_id = job.created_by_id
        self.device, self.worker_id = device, worker_id
        self.settings, self.sessions = settings, sessions
        self.data_dir: Path = Path(settings.data_dir)
        self.latest_progress: float | None = None
        self._written_at = 0.0

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose transaction commits when the block ends without error."""
        with self.sessions.begin() as session:
            yield session

    def owned(self, session: Session) -> Job:
        """This job, locked, while this worker still owns it (JobLost otherwise)."""
        return job_service.owned_job(session, job_id=self.job_id, worker_id=self.worker_id, attempt=self.attempt)

    def model_dir(self, name: str) -> Path:
        """Where this attempt writes a model folder: `data_dir/models/<name>-job<id>-a<attempt>`.

        Per attempt, so a worker that lost the job cannot overwrite the folder its successor registers. Write it
        with `app.storage.atomic_dir(ctx.model_dir(name))` so it appears whole or not at all.
        """
        return self.data_dir / "models" / f"{name}-job{self.job_id}-a{self.attempt}"

    def progress(self, fraction: float) -> None:
        """Report progress in [0, 1]; written at most once a second."""
        self.latest_progress = fraction
        if time.monotonic() - self._written_at >= PROGRESS_WRITE_S or fraction >= 1.0:
            self._written_at = time.monotonic()
            with self.transaction() as session:
                control = job_service.heartbeat(
                    session, job_id=self.job_id, worker_id=self.worker_id, attempt=self.attempt, progress=fraction
                )
            if control == Control.lost:
                raise JobLost(f"job {self.job_id} was taken from this worker")

    def metrics(self, **values: Any) -> None:
        """Append one point to the metrics time series (give `step` for the x axis)."""
        with self.transaction() as session:
            job_service.append_metrics(self.owned(session), point=values)

    def log(self, message: str) -> None:
        """Append a line to the job's log tail (and the worker's own log)."""
        logger.info("job %s: %s", self.job_id, message)
        with self.transaction() as session:
            job_service.append_log(self.owned(session), message=message)

    def save_checkpoint(self, session: Session, checkpoint: str, *, progress: float | None = None) -> None:
        """Record the resume point inside the handler's own transaction, so results and checkpoint commit together."""
        job = self.owned(session)
        job.checkpoint = checkpoint
        if progress is not None:
            job_service.set_progress(job, progress=progress)
            self.latest_progress = progress
        self.checkpoint = checkpoint

    def check_cancelled(self) -> None:
        """Raise JobCancelled if a researcher cancelled the job, JobLost if it is no longer ours, WorkerStopping."""
        with self.transaction() as session:
            row = session.execute(
                select(Job.cancel_requested, Job.worker_id, Job.attempts, Job.status).where(Job.id == self.job_id)
            ).one()
        if row.worker_id != self.worker_id or row.attempts != self.attempt or row.status != JobStatus.running:
            raise JobLost(f"job {self.job_id} was taken from this worker")
        if row.cancel_requested:
            raise JobCancelled(f"job {self.job_id} was cancelled")
        if self.stop.is_set():
            raise WorkerStopping(f"worker {self.worker_id} is stopping")


Handler = Callable[[JobContext, Any], "NewModelVersion | None"]
"""Runs one job with its parsed params; returns the model it produced, if any (the worker registers it)."""
