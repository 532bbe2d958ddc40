"""The worker loop: requeue stale jobs, evaluate schedules (one worker at a time), claim a job, run it, record it.

The worker knows no job kind by name: `trainer.jobs.discover_handlers()` finds one module per kind. A handler gets
a `JobContext` (trainer/context.py) and its params parsed with the kind's params model; it does its own database
work in `ctx.transaction()` sessions, reports progress, metrics and log lines, checks for cancellation at its
checkpoints and saves a checkpoint string that a later attempt resumes from after a stale-heartbeat requeue. A model
it returns is registered in the transaction that finishes the job. Importing this module is cheap (no torch).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.errors import DomainError
from app.models import Job, JobKind, JobStatus, utcnow
from app.services import jobs as job_service
from app.services import model_registry
from app.services import rounds as round_service
from app.services import schedules as schedule_service
from app.services import storage as storage_service
from app.services import workers as worker_service
from app.services.jobs import Control, JobLost
from app.storage import sweep_abandoned
from trainer.common.context import Handler, JobCancelled, JobContext, NewModelVersion, WorkerStopping
from trainer.common.peak import report_peak, reset_peak
from trainer.jobs import discover_handlers
from trainer.presence import Presence

logger = logging.getLogger("ranklab.worker")
LOW_DISK_RETRY_S = 30.0
"""How long a worker that refused a job for lack of disk waits before it looks at the queue again."""


def new_worker_id() -> str:
    """host:pid:random, unique per worker process run."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def detect_device(requested: str = "auto") -> str:
    """'cuda' when asked for or available (auto), else 'cpu'; refuses cuda without a GPU."""
    if requested == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if requested == "cuda":
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
    return "cpu"


@dataclass
class WorkerConfig:
    """How one worker process behaves."""

    worker_id: str = field(default_factory=new_worker_id)
    """Unique name recorded on the jobs it claims."""
    device: str = "cpu"
    """Device handlers run on: cuda or cpu."""
    kinds: tuple[JobKind, ...] | None = None
    """Job kinds this worker takes; None = every kind it has a handler for."""
    once: bool = False
    """Work through the queued jobs and return instead of polling forever."""
    heartbeat_s: float = 10.0
    """Seconds between heartbeats of the running job, and between refreshes of the worker's row while idle."""
    stale_after_s: float = 120.0
    """A running job with an older heartbeat is requeued (or failed when out of attempts)."""
    poll_s: float = 2.0
    """Idle sleep between looks at the queue."""
    lease_s: float = 60.0
    """Lifetime of the scheduler lease."""
    max_attempts: int = 3
    """Attempts given to jobs queued by schedules."""
    run_scheduler: bool = True
    """Whether this worker competes for the scheduler lease."""
    forget_after_s: float = 86400.0
    """Rows of workers (any worker) not seen for this long are deleted from the workers table."""
    db_retry_s: float = 5.0
    """Wait before trying the database again after it failed (locked, restarting, unreachable)."""
    clock: Callable[[], datetime] = utcnow
    """The time schedules and the scheduler lease are judged by (tests pass a clock they move themselves)."""

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> WorkerConfig:
        """Timing fields from Settings, the rest from keyword arguments."""
        base = {
            "heartbeat_s": settings.worker_heartbeat_s,
            "stale_after_s": settings.worker_stale_after_s,
            "poll_s": settings.worker_poll_s,
            "lease_s": settings.scheduler_lease_s,
            "max_attempts": settings.job_max_attempts,
            "forget_after_s": settings.worker_forget_after_s,
            "db_retry_s": max(settings.worker_poll_s, 5.0),
        }
        return cls(**{**base, **overrides})


class Heartbeat(threading.Thread):
    """Refreshes the running job's heartbeat, and its worker's row in the workers table, until stopped."""

    def __init__(self, ctx: JobContext, interval_s: float) -> None:
        super().__init__(name=f"heartbeat-{ctx.job_id}", daemon=True)
        self.ctx, self.interval_s, self.stopped = ctx, interval_s, threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval_s):
            try:
                with self.ctx.transaction() as session:
                    control = job_service.heartbeat(
                        session,
                        job_id=self.ctx.job_id,
                        worker_id=self.ctx.worker_id,
                        attempt=self.ctx.attempt,
                        progress=self.ctx.latest_progress,
                    )
                    if control != Control.lost:
                        worker_service.see_worker(session, worker_id=self.ctx.worker_id, job_id=self.ctx.job_id)
            except Exception:  # noqa: BLE001 - a missed beat is retried; staleness handles a dead database
                logger.exception("heartbeat for job %s failed", self.ctx.job_id)
                continue
            if control == Control.lost:
                logger.warning("job %s was taken from this worker", self.ctx.job_id)
                return

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=self.interval_s + 5)


Outcome = tuple[JobStatus, str | None, NewModelVersion | None]
"""(final status, error message, model to register)."""


def _outcome(handler: Handler, ctx: JobContext, params: dict[str, Any]) -> Outcome:
    """Parse the params and run the handler; map its ending to an Outcome. JobLost and WorkerStopping propagate."""
    try:
        output = handler(ctx, job_service.parse_params(ctx.kind, params))
    except JobCancelled:
        return JobStatus.cancelled, None, None
    except (JobLost, WorkerStopping):
        raise
    except Exception as exc:  # noqa: BLE001 - any handler error fails the job with its message
        logger.exception("job %s failed", ctx.job_id)
        tail = "".join(traceback.format_exception(exc)[-3:])
        try:
            ctx.log(tail)
        except Exception:  # noqa: BLE001
            logger.exception("could not write the traceback of job %s", ctx.job_id)
        return JobStatus.failed, f"{type(exc).__name__}: {exc}", None
    return JobStatus.succeeded, None, output


def record_outcome(session: Session, ctx: JobContext, outcome: Outcome) -> None:
    """Finish the job and register the model it produced, in the caller's one transaction (JobLost if not ours)."""
    status, error, output = outcome
    model_id = None
    if output is not None and status == JobStatus.succeeded:
        ctx.owned(session)  # lock the job first: a job this worker lost registers nothing
        model_id = model_registry.register_model(
            session,
            kind=output.kind,
            name=output.name,
            path=output.path,
            parent_id=output.parent_id,
            job_id=ctx.job_id,
            metrics=output.metrics,
        ).id
    job_service.finish_job(
        session,
        job_id=ctx.job_id,
        worker_id=ctx.worker_id,
        attempt=ctx.attempt,
        status=status,
        error=error,
        output_model_id=model_id,
    )


def finish(sessions: sessionmaker[Session], ctx: JobContext, outcome: Outcome) -> JobStatus:
    """Record the outcome; a model that cannot be registered (incomplete folder, ...) fails the job instead."""
    try:
        with sessions.begin() as session:
            record_outcome(session, ctx, outcome)
        return outcome[0]
    except DomainError as exc:
        logger.warning("job %s: could not register its model: %s", ctx.job_id, exc.message)
        failed: Outcome = (JobStatus.failed, f"could not register the model: {exc.message}", None)
        with sessions.begin() as session:
            record_outcome(session, ctx, failed)
        return JobStatus.failed


def run_job(
    job: Job,
    handler: Handler,
    cfg: WorkerConfig,
    sessions: sessionmaker[Session],
    settings: Settings,
    stop: threading.Event | None = None,
) -> str:
    """Run one claimed job to its end; returns the final status, 'lost' or 'released'."""
    ctx = JobContext(job, worker_id=cfg.worker_id, device=cfg.device, sessions=sessions, settings=settings, stop=stop)
    resume = " from its checkpoint" if ctx.checkpoint else ""
    ctx.log(f"attempt {ctx.attempt} started on {cfg.worker_id} ({cfg.device}){resume}")
    beat = Heartbeat(ctx, cfg.heartbeat_s)
    beat.start()
    reset_peak(cfg.device)
    try:
        outcome = _outcome(handler, ctx, dict(job.params))
        peaks = report_peak(ctx, cfg.device)
        if outcome[2] is not None:  # the registered version remembers what training it took
            outcome[2].metrics.update(peaks)
    except JobLost as exc:
        logger.warning("%s", exc)
        return "lost"
    except WorkerStopping:
        with sessions.begin() as session:
            job_service.release_job(session, job_id=ctx.job_id, worker_id=cfg.worker_id, attempt=ctx.attempt)
        return "released"
    finally:
        beat.stop()
    try:
        return finish(sessions, ctx, outcome).value
    except JobLost as exc:
        logger.warning("%s", exc)
        return "lost"
    except OperationalError as exc:  # e.g. SQLite locked past its timeout: the worker keeps the outcome
        logger.warning("job %s ended (%s) but could not be recorded yet: %s", ctx.job_id, outcome[0].value, exc)
        raise OutcomeNotRecorded(ctx, outcome) from exc


class OutcomeNotRecorded(Exception):
    """A job ended but the database refused the write that records it; the worker retries it until it lands."""

    def __init__(self, ctx: JobContext, outcome: Outcome) -> None:
        super().__init__(f"job {ctx.job_id} ended {outcome[0].value} but is not recorded yet")
        self.ctx, self.outcome = ctx, outcome


def record_pending(sessions: sessionmaker[Session], pending: list[OutcomeNotRecorded]) -> list[OutcomeNotRecorded]:
    """Try again to record outcomes the database refused; returns those still waiting."""
    waiting = []
    for item in pending:
        try:
            status = finish(sessions, item.ctx, item.outcome)
            logger.info("job %s recorded late: %s", item.ctx.job_id, status.value)
        except JobLost as exc:  # requeued meanwhile (stale heartbeat): its next attempt records it
            logger.warning("%s", exc)
        except OperationalError:
            waiting.append(item)
    return waiting


def maintain(cfg: WorkerConfig, sessions: sessionmaker[Session]) -> None:
    """Requeue stale jobs and, while holding the scheduler lease, queue due scheduled jobs and advance rounds."""
    with sessions.begin() as session:
        for job in job_service.requeue_stale(session, stale_after_s=cfg.stale_after_s):
            logger.warning("job %s had a stale heartbeat: now %s", job.id, job.status.value)
    if not cfg.run_scheduler:
        return
    with sessions.begin() as session:
        now = cfg.clock()
        if schedule_service.acquire_lease(
            session, name=schedule_service.SCHEDULER_LEASE, holder=cfg.worker_id, ttl_s=cfg.lease_s, now=now
        ):
            for job in schedule_service.run_due_schedules(session, now=now, max_attempts=cfg.max_attempts):
                logger.info("schedule queued job %s (%s)", job.id, job.kind.value)
            for round_ in round_service.advance_rounds(session, max_attempts=cfg.max_attempts):
                logger.info("round %s: %s (%s)", round_.id, round_.step.value, round_.status.value)


def claim_next(cfg: WorkerConfig, sessions: sessionmaker[Session], kinds: Sequence[JobKind]) -> Job | None:
    """Claim one job in its own committed transaction (the worker's row says it runs it, in the same one)."""
    with sessions.begin() as session:
        job = job_service.claim_job(session, worker_id=cfg.worker_id, device=cfg.device, kinds=kinds)
        if job is not None:
            worker_service.see_worker(session, worker_id=cfg.worker_id, job_id=job.id)
        return job


def work(
    cfg: WorkerConfig,
    sessions: sessionmaker[Session],
    settings: Settings,
    *,
    handlers: Mapping[JobKind, Handler] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """The worker loop; returns how many jobs it ran. With `cfg.once` it returns when the queue is empty."""
    handlers = dict(handlers) if handlers is not None else discover_handlers()
    kinds = cfg.kinds or tuple(handlers)
    missing = [k.value for k in kinds if k not in handlers]
    if missing:
        raise ValueError(f"this worker cannot run job kind(s) {', '.join(missing)} yet")
    stop = stop or threading.Event()
    presence = Presence(
        worker_id=cfg.worker_id,
        device=cfg.device,
        kinds=kinds,
        sessions=sessions,
        refresh_s=cfg.heartbeat_s,
        forget_after_s=cfg.forget_after_s,
    )
    logger.info("worker %s on %s takes %s", cfg.worker_id, cfg.device, ", ".join(k.value for k in kinds))
    for folder in sweep_abandoned(settings.data_dir):
        logger.warning("removed %s, a half-written folder left by a worker that died while writing it", folder)
    try:
        ran = _loop(cfg, sessions, settings, handlers, kinds, stop, presence)
    finally:
        presence.stopped()
    _release_scheduler(cfg, sessions)
    return ran


def _loop(
    cfg: WorkerConfig,
    sessions: sessionmaker[Session],
    settings: Settings,
    handlers: Mapping[JobKind, Handler],
    kinds: Sequence[JobKind],
    stop: threading.Event,
    presence: Presence,
) -> int:
    """Claim and run jobs until stopped (or, with `cfg.once`, until the queue is empty); how many it ran."""
    ran, pending = 0, list[OutcomeNotRecorded]()
    while not stop.is_set():
        pending = record_pending(sessions, pending)
        try:
            presence.idle()
            maintain(cfg, sessions)
            job = None if pending else claim_next(cfg, sessions, kinds)  # record what ended before taking more
        except OperationalError:  # database restarting, unreachable or locked: keep the worker alive and retry
            logger.exception("the database is unavailable; retrying in %.0f s", cfg.db_retry_s)
            stop.wait(cfg.db_retry_s)
            continue
        if job is None:
            if cfg.once and not pending:
                break
            stop.wait(cfg.db_retry_s if pending else cfg.poll_s)
            continue
        logger.info("claimed job %s (%s, attempt %s)", job.id, job.kind.value, job.attempts)
        if refused_for_disk(job, cfg, sessions, settings):
            presence.job_ended()
            if cfg.once:
                break
            stop.wait(max(cfg.poll_s, LOW_DISK_RETRY_S))
            continue
        try:
            status = run_job(job, handlers[job.kind], cfg, sessions, settings, stop)
        except OutcomeNotRecorded as unrecorded:
            pending.append(unrecorded)
            status = "not recorded yet"
        except OperationalError:  # the database failed around the job (its log, a release): a stale heartbeat
            logger.exception("job %s: the database failed; it is requeued when its heartbeat goes stale", job.id)
            status = "abandoned"
        logger.info("job %s ended: %s", job.id, status)
        presence.job_ended()
        ran += 1
    return ran


def refused_for_disk(job: Job, cfg: WorkerConfig, sessions: sessionmaker[Session], settings: Settings) -> bool:
    """Hand a claimed job back, with the numbers in its log, when the data folder's disk is too full to start it."""
    problem = storage_service.low_disk_message(settings.data_dir, min_free_gb=settings.min_free_disk_gb)
    if problem is None:
        return False
    logger.warning("not starting job %s: %s", job.id, problem)
    with sessions.begin() as session:
        job_service.refuse_job(session, job_id=job.id, worker_id=cfg.worker_id, attempt=job.attempts, reason=problem)
    return True


def _release_scheduler(cfg: WorkerConfig, sessions: sessionmaker[Session]) -> None:
    """A stopping worker hands the scheduler lease on, so schedules and rounds do not wait for it to expire."""
    try:
        with sessions.begin() as session:
            schedule_service.release_lease(session, name=schedule_service.SCHEDULER_LEASE, holder=cfg.worker_id)
    except OperationalError:
        logger.warning("could not release the scheduler lease; it expires in %.0f s", cfg.lease_s)
