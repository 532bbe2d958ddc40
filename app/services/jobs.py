"""The job queue: the jobs table is the queue (no broker). Enqueue, claim, heartbeat, record, finish, cancel.

A claim is owned by (worker_id, attempt): every write a worker makes to a running job checks both, so a worker
that lost its job to a stale-heartbeat requeue can never overwrite the new owner's progress or results.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy import CursorResult, Result, select, update
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.models import Job, JobKind, JobStatus, User, utcnow
from app.schemas.jobs import JOB_KINDS, JobParams
from app.services import export_options
from app.services.serialize import json_safe

LOG_TAIL_CHARS = 16_000
"""The log tail keeps the last this-many characters."""
MAX_METRIC_POINTS = 5_000
"""The metrics time series keeps the last this-many points."""
FINISHED = (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


class JobLost(Exception):
    """The job is no longer owned by this worker (requeued after a stale heartbeat, or finished)."""


class Control(enum.StrEnum):
    """What a heartbeat tells the worker to do next."""

    carry_on = "carry_on"
    cancel = "cancel"
    lost = "lost"


def affected_rows(result: Result[Any]) -> int:
    """Rows changed by an UPDATE/DELETE statement."""
    return cast("CursorResult[Any]", result).rowcount


def format_validation_error(kind: JobKind, exc: ValidationError) -> str:
    """A one-line message naming every bad param."""
    parts = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]) or "params"
        parts.append(f"params.{name}: {err['msg']}" if err["loc"] else f"params: {err['msg']}")
    return f"invalid {kind.value} params: " + "; ".join(parts)


def parse_params(kind: JobKind, params: dict[str, Any]) -> JobParams:
    """The params as the kind's pydantic model; InvalidInput naming the bad param otherwise."""
    if not isinstance(params, dict):
        raise InvalidInput("params must be a JSON object")
    spec = JOB_KINDS.get(kind)
    if spec is None:
        runnable = ", ".join(k.value for k in JOB_KINDS)
        raise InvalidInput(
            f"no worker can run {kind.value!r} jobs in this version of ranklab; runnable kinds: {runnable}"
        )
    try:
        return spec.params_model.from_params(params)
    except ValidationError as exc:
        raise InvalidInput(format_validation_error(kind, exc)) from exc


def validate_params(session: Session, *, kind: JobKind, params: dict[str, Any]) -> dict[str, Any]:
    """Validated, defaults-filled params (a JSON-ready dict) whose references (prompts, models) exist."""
    parsed = parse_params(kind, params)
    parsed.check_references(session)
    return parsed.model_dump(mode="json")


def enqueue_job(
    session: Session,
    *,
    kind: JobKind,
    params: dict[str, Any],
    created_by: User | None = None,
    schedule_id: int | None = None,
    max_attempts: int = 3,
) -> Job:
    """Validate the params and queue a job."""
    job = Job(
        kind=kind,
        params=validate_params(session, kind=kind, params=params),
        status=JobStatus.queued,
        max_attempts=max_attempts,
        schedule_id=schedule_id,
        created_by_id=created_by.id if created_by else None,
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, *, job_id: int, for_update: bool = False) -> Job:
    """The job with this id, or NotFound."""
    stmt = select(Job).where(Job.id == job_id)
    job = session.scalar(stmt.with_for_update() if for_update else stmt)
    if job is None:
        raise NotFound(f"no job with id {job_id}")
    return job


def export_file(session: Session, *, job_id: int, data_dir: Path) -> Path:
    """The file a succeeded export job wrote; NotFound/Conflict with the reason otherwise."""
    job = get_job(session, job_id=job_id)
    if job.kind != JobKind.export:
        raise NotFound(f"job {job_id} is a {job.kind.value} job; only export jobs have a file to download")
    if job.status != JobStatus.succeeded:
        raise Conflict(f"job {job_id} is {job.status.value}; its file can be downloaded once it has succeeded")
    path = export_options.job_file(data_dir, job_id=job_id, fmt=str(job.params.get("format", "pairs")))
    if not path.is_file():
        raise NotFound(f"the file of export job {job_id} is no longer in the data folder; run the export again")
    return path


def list_jobs(
    session: Session, *, status: JobStatus | None = None, kind: JobKind | None = None, limit: int = 100
) -> list[Job]:
    """Newest jobs first."""
    stmt = select(Job).order_by(Job.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(Job.status == status)
    if kind is not None:
        stmt = stmt.where(Job.kind == kind)
    return list(session.scalars(stmt))


def claim_job(
    session: Session,
    *,
    worker_id: str,
    device: str,
    kinds: Sequence[JobKind] | None = None,
    now: datetime | None = None,
) -> Job | None:
    """Atomically take the oldest queued job (of `kinds`); None when the queue is empty. Commit right after."""
    now = now or utcnow()
    for _ in range(5):
        stmt = select(Job).where(Job.status == JobStatus.queued).order_by(Job.created_at, Job.id).limit(1)
        if kinds is not None:
            stmt = stmt.where(Job.kind.in_(list(kinds)))
        # PostgreSQL: concurrent claimers skip each other's rows. SQLite ignores FOR UPDATE; its transactions
        # are serialised (BEGIN IMMEDIATE) and the conditional UPDATE below guards any other set-up.
        job = session.scalar(stmt.with_for_update(skip_locked=True))
        if job is None:
            return None
        taken = session.execute(
            update(Job)
            .where(Job.id == job.id, Job.status == JobStatus.queued)
            .values(
                status=JobStatus.running,
                worker_id=worker_id,
                device=device,
                attempts=Job.attempts + 1,
                heartbeat_at=now,
                started_at=job.started_at or now,
            )
            .execution_options(synchronize_session=False)
        )
        if affected_rows(taken) == 1:
            session.refresh(job)
            return job
    return None


def owned_job(session: Session, *, job_id: int, worker_id: str, attempt: int) -> Job:
    """The running job, locked, if this worker's claim still holds; JobLost otherwise."""
    job = session.scalar(
        select(Job)
        .where(Job.id == job_id, Job.worker_id == worker_id, Job.attempts == attempt, Job.status == JobStatus.running)
        .with_for_update()
    )
    if job is None:
        raise JobLost(f"job {job_id} is no longer run by {worker_id} (attempt {attempt})")
    return job


def heartbeat(session: Session, *, job_id: int, worker_id: str, attempt: int, progress: float | None = None) -> Control:
    """Refresh the heartbeat (and progress); says whether to carry on, stop for a cancel, or give up the job."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if progress is not None:
        values["progress"] = min(max(progress, 0.0), 1.0)
    done = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker_id == worker_id, Job.attempts == attempt, Job.status == JobStatus.running)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if affected_rows(done) != 1:
        return Control.lost
    cancel = session.scalar(select(Job.cancel_requested).where(Job.id == job_id))
    return Control.cancel if cancel else Control.carry_on


def append_metrics(job: Job, *, point: dict[str, Any]) -> None:
    """Add one point ({"step": ..., "name": value, ...}) to the job's metrics time series."""
    series = list(job.metrics or [])
    series.append({"at": utcnow().isoformat(timespec="seconds"), **json_safe(point)})
    job.metrics = series[-MAX_METRIC_POINTS:]


def append_log(job: Job, *, message: str) -> None:
    """Add a timestamped line to the job's log tail (only the tail is kept)."""
    line = f"{utcnow():%Y-%m-%d %H:%M:%S} {message.rstrip()}\n"
    job.log_tail = ((job.log_tail or "") + line)[-LOG_TAIL_CHARS:]


def set_progress(job: Job, *, progress: float) -> None:
    """Progress in [0, 1]."""
    job.progress = min(max(progress, 0.0), 1.0)


def finish_job(
    session: Session,
    *,
    job_id: int,
    worker_id: str,
    attempt: int,
    status: JobStatus,
    error: str | None = None,
    output_model_id: int | None = None,
) -> Job:
    """Mark the owned job finished; JobLost when the claim no longer holds."""
    if status not in FINISHED:
        raise ValueError(f"{status} is not a final status")
    job = owned_job(session, job_id=job_id, worker_id=worker_id, attempt=attempt)
    job.status = status
    job.error = error
    job.finished_at = utcnow()
    if status == JobStatus.succeeded:
        job.progress = 1.0
    if output_model_id is not None:
        job.output_model_id = output_model_id
    append_log(job, message=f"{status.value}" + (f": {error}" if error else ""))
    session.flush()
    return job


def release_job(session: Session, *, job_id: int, worker_id: str, attempt: int) -> Job:
    """A worker shutting down hands its job back to the queue (checkpoint kept, the attempt not counted)."""
    job = owned_job(session, job_id=job_id, worker_id=worker_id, attempt=attempt)
    job.status, job.worker_id = JobStatus.queued, None
    job.attempts = max(job.attempts - 1, 0)
    append_log(job, message=f"worker {worker_id} is shutting down; back in the queue, resumes from its checkpoint")
    session.flush()
    return job


def refuse_job(session: Session, *, job_id: int, worker_id: str, attempt: int, reason: str) -> Job:
    """A worker that cannot start a job it claimed (too little disk) hands it back as it was, saying why in its log
    (a refusal right after another replaces its line, with the new numbers)."""
    job = owned_job(session, job_id=job_id, worker_id=worker_id, attempt=attempt)
    job.status, job.worker_id, job.heartbeat_at = JobStatus.queued, None, None
    job.attempts = max(job.attempts - 1, 0)
    if job.attempts == 0:
        job.started_at = job.device = None
    lines = (job.log_tail or "").splitlines(keepends=True)
    if lines and " did not start it: " in lines[-1]:
        job.log_tail = "".join(lines[:-1])
    append_log(job, message=f"worker {worker_id} did not start it: {reason}")
    session.flush()
    return job


def request_cancel(session: Session, *, job_id: int, actor: User | None = None) -> Job:
    """Cancel a queued job now, or ask a running one to stop at its next checkpoint."""
    job = get_job(session, job_id=job_id, for_update=True)
    who = f" by {actor.username}" if actor else ""
    if job.status in FINISHED:
        raise Conflict(f"job {job_id} has already {job.status.value}; there is nothing to cancel")
    if job.status == JobStatus.queued:
        job.status = JobStatus.cancelled
        job.finished_at = utcnow()
        append_log(job, message=f"cancelled{who} before it started")
    elif not job.cancel_requested:
        job.cancel_requested = True
        append_log(job, message=f"cancel requested{who}; stopping at the next checkpoint")
    session.flush()
    return job


def requeue_stale(session: Session, *, stale_after_s: float, now: datetime | None = None) -> list[Job]:
    """Running jobs whose heartbeat is stale go back to the queue, or fail once out of attempts."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=stale_after_s)
    stale = session.scalars(
        select(Job).where(Job.status == JobStatus.running, Job.heartbeat_at < cutoff).with_for_update(skip_locked=True)
    ).all()
    for job in stale:
        lost = f"worker {job.worker_id} stopped heartbeating (attempt {job.attempts} of {job.max_attempts})"
        if job.cancel_requested:
            job.status, job.finished_at = JobStatus.cancelled, now
            append_log(job, message=f"{lost}; it had been asked to cancel, so it is cancelled")
        elif job.attempts >= job.max_attempts:
            job.status, job.finished_at, job.error = JobStatus.failed, now, f"{lost}; out of attempts"
            append_log(job, message=job.error)
        else:
            job.status, job.worker_id = JobStatus.queued, None
            append_log(job, message=f"{lost}; back in the queue, resumes from its last checkpoint")
    session.flush()
    return list(stale)
