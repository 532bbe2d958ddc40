"""Where a queued job stands: its place in the queue, the jobs ahead of it, and the workers seen running jobs.

The jobs table is the queue (claim order: oldest first), so all of this is read from it. A worker shows up here
while it runs a job and its heartbeat is fresh; an idle worker leaves no trace in the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from app.models import Job, JobStatus, utcnow


@dataclass(frozen=True)
class QueueState:
    """A queued job's place: 1 = the next claimed; the queued jobs ahead; running jobs by fresh or stale worker."""

    position: int
    ahead: list[Job]
    running: list[Job]
    stale: list[Job]


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
    return QueueState(position=count + 1, ahead=ahead, running=alive, stale=stale)
