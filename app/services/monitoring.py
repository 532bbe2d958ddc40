"""The operational figures `/metrics` reads from the database at each scrape (app.monitoring formats them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from app.enums import WorkerStatus
from app.models import Job, JobStatus, Ranking, Role, User, utcnow
from app.schemas.jobs import JOB_KINDS
from app.services import storage
from app.services import workers as worker_service

UNFINISHED = (JobStatus.queued, JobStatus.running)


@dataclass(frozen=True)
class Figures:
    jobs: dict[tuple[str, str], int]
    """(kind, status) -> jobs, for every runnable kind and both unfinished statuses (zeros included)."""
    oldest_queued_s: float
    workers: dict[str, int]
    """Workers by status: running, idle, not_responding (stopped ones are not counted)."""
    workers_alive: int
    rankings: int
    rankings_last_hour: int
    labelers_active: int
    data_free_bytes: int


def figures(session: Session, *, data_dir: Path, stale_after_s: float, now: datetime | None = None) -> Figures:
    """Queue depth by kind, workers, rankings and labelers in the last hour, free disk: each one query."""
    now = now or utcnow()
    jobs = {(kind.value, status.value): 0 for kind in JOB_KINDS for status in UNFINISHED}
    counted = session.execute(
        select(Job.kind, Job.status, func.count()).where(Job.status.in_(UNFINISHED)).group_by(Job.kind, Job.status)
    )
    for kind, status, n in counted:
        jobs[(kind.value, status.value)] = n
    oldest = session.scalar(select(func.min(Job.created_at)).where(Job.status == JobStatus.queued))
    views = worker_service.list_workers(session, stale_after_s=stale_after_s, now=now)
    shown = (WorkerStatus.running, WorkerStatus.idle, WorkerStatus.not_responding)
    workers = {s.value: sum(1 for v in views if v.status == s) for s in shown}
    hour_ago = now - timedelta(hours=1)
    recent = select(Ranking).where(Ranking.created_at >= hour_ago).subquery()
    return Figures(
        jobs=jobs,
        oldest_queued_s=max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0,
        workers=workers,
        workers_alive=sum(1 for v in views if v.alive),
        rankings=session.scalar(select(func.count()).select_from(Ranking)) or 0,
        rankings_last_hour=session.scalar(select(func.count()).select_from(recent)) or 0,
        labelers_active=session.scalar(
            select(func.count(distinct(recent.c.labeler_id)))
            .select_from(recent)
            .join(User, User.id == recent.c.labeler_id)
            .where(User.role == Role.labeler)
        )
        or 0,
        data_free_bytes=storage.disk_space(data_dir)[0],
    )
