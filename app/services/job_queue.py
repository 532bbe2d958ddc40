"""Where a queued job stands: its place in the queue, the jobs ahead of it, and the workers that could take it.

The jobs table is the queue (claim order: oldest first); the workers table (app.services.workers) says which workers
are alive, idle or busy, and which job kinds each takes, so the page can say why a job waits: no worker alive, none
that takes its kind, all of them busy, or an idle one about to claim it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from app.enums import WorkerStatus
from app.models import Job, JobStatus, utcnow
from app.services import workers as worker_service
from app.services.workers import WorkerView


class Waiting(enum.StrEnum):
    """Why a queued job has not been claimed."""

    no_worker = "no_worker"
    """No worker is alive: nothing runs until one is started."""
    no_worker_for_kind = "no_worker_for_kind"
    """Workers are alive, but none takes this job's kind."""
    all_busy = "all_busy"
    """Every live worker that takes this kind runs a job: it waits for one to finish."""
    idle_worker = "idle_worker"
    """An idle worker takes this kind: it claims the oldest such job at its next look at the queue."""


@dataclass(frozen=True)
class QueueState:
    """A queued job's place: 1 = the next claimed; the queued jobs ahead; running jobs by fresh or stale worker; the
    workers, and why the job waits."""

    position: int
    ahead: list[Job]
    running: list[Job]
    stale: list[Job]
    waiting: Waiting
    idle: list[WorkerView]
    """Live idle workers that take the job's kind."""
    busy: list[WorkerView]
    """Live workers that take the job's kind and run a job."""
    others: list[WorkerView]
    """Live workers that do not take the job's kind."""
    not_responding: list[WorkerView]


def queue_state(session: Session, *, job: Job, stale_after_s: float, now: datetime | None = None) -> QueueState:
    """The queue as a queued job sees it (claim_job takes the oldest queued job first)."""
    now = now or utcnow()
    earlier = or_(Job.created_at < job.created_at, and_(Job.created_at == job.created_at, Job.id < job.id))
    ahead = list(
        session.scalars(
            select(Job).where(Job.status == JobStatus.queued, earlier).order_by(Job.created_at, Job.id).limit(20)
        )
    )
    running = list(session.scalars(select(Job).where(Job.status == JobStatus.running).order_by(Job.id)))
    fresh_after = now - timedelta(seconds=stale_after_s)
    alive = [j for j in running if j.heartbeat_at is not None and j.heartbeat_at >= fresh_after]
    stale = [j for j in running if j not in alive]
    count = session.scalar(select(func.count()).select_from(Job).where(Job.status == JobStatus.queued, earlier)) or 0
    workers = worker_service.list_workers(session, stale_after_s=stale_after_s, now=now)
    live = [w for w in workers if w.alive]
    idle = [w for w in live if w.takes(job.kind) and w.status == WorkerStatus.idle]
    busy = [w for w in live if w.takes(job.kind) and w.status == WorkerStatus.running]
    # a job with a fresh heartbeat whose worker has no row (a worker from before the workers table) is busy too
    unlisted = [j for j in alive if j.worker_id not in {w.id for w in workers}]
    return QueueState(
        position=count + 1,
        ahead=ahead,
        running=alive,
        stale=stale,
        waiting=_waiting(idle=idle, busy=busy, live=live, unlisted=unlisted),
        idle=idle,
        busy=busy,
        others=[w for w in live if not w.takes(job.kind)],
        not_responding=[w for w in workers if w.status == WorkerStatus.not_responding],
    )


def _waiting(*, idle: list[WorkerView], busy: list[WorkerView], live: list[WorkerView], unlisted: list[Job]) -> Waiting:
    if idle:
        return Waiting.idle_worker
    if busy or unlisted:
        return Waiting.all_busy
    return Waiting.no_worker_for_kind if live else Waiting.no_worker
