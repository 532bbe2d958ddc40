"""Workers: which are alive, idle or busy, from the rows the worker loop keeps in the workers table.

A worker registers when it starts, refreshes `last_seen_at` while idle (every `worker_heartbeat_s`, not at every
poll) and from its job's heartbeat thread while it runs one, and marks itself stopped when its loop ends. A worker
not seen for `worker_stale_after_s` is "not responding" (killed, its machine gone, or cut off from the database); a
row not seen for `worker_forget_after_s` (a stopped or vanished worker) is deleted, so the table stays small.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.enums import JobKind, WorkerState, WorkerStatus
from app.models import Job, Worker, utcnow
from app.services.jobs import affected_rows

_ORDER = {WorkerStatus.running: 0, WorkerStatus.idle: 1, WorkerStatus.not_responding: 2, WorkerStatus.stopped: 3}


@dataclass(frozen=True)
class WorkerView:
    """One worker as the pages and the API show it (field names are WorkerRead's)."""

    id: str
    host: str
    pid: int
    device: str
    kinds: list[str]
    capabilities: dict[str, Any]
    state: WorkerState
    status: WorkerStatus
    current_job_id: int | None
    current_job_kind: JobKind | None
    started_at: datetime
    last_seen_at: datetime
    seen_s_ago: float

    @property
    def alive(self) -> bool:
        return self.status in (WorkerStatus.idle, WorkerStatus.running)

    def takes(self, kind: JobKind) -> bool:
        return kind.value in self.kinds


def status_of(worker: Worker, *, now: datetime, stale_after_s: float) -> WorkerStatus:
    """Its state, unless a live worker has not been seen for the stale time."""
    if worker.state == WorkerState.stopped:
        return WorkerStatus.stopped
    if worker.last_seen_at < now - timedelta(seconds=stale_after_s):
        return WorkerStatus.not_responding
    return WorkerStatus.running if worker.state == WorkerState.running else WorkerStatus.idle


def register_worker(
    session: Session,
    *,
    worker_id: str,
    host: str,
    pid: int,
    device: str,
    kinds: Sequence[JobKind],
    capabilities: dict[str, Any],
    now: datetime | None = None,
) -> Worker:
    """Add (or renew) the worker's row as idle, seen now."""
    now = now or utcnow()
    worker = session.get(Worker, worker_id)
    if worker is None:
        worker = Worker(id=worker_id, started_at=now)
        session.add(worker)
    worker.host, worker.pid, worker.device = host, pid, device
    worker.kinds, worker.capabilities = [k.value for k in kinds], dict(capabilities)
    worker.state, worker.current_job_id, worker.last_seen_at = WorkerState.idle, None, now
    session.flush()
    return worker


def see_worker(session: Session, *, worker_id: str, job_id: int | None, now: datetime | None = None) -> bool:
    """The worker is alive: idle (job_id None) or running that job. False when its row is gone (register again)."""
    state = WorkerState.idle if job_id is None else WorkerState.running
    done = session.execute(
        update(Worker)
        .where(Worker.id == worker_id)
        .values(last_seen_at=now or utcnow(), state=state, current_job_id=job_id)
        .execution_options(synchronize_session=False)
    )
    return affected_rows(done) == 1


def stop_worker(session: Session, *, worker_id: str, now: datetime | None = None) -> None:
    """The worker's loop has ended."""
    session.execute(
        update(Worker)
        .where(Worker.id == worker_id)
        .values(last_seen_at=now or utcnow(), state=WorkerState.stopped, current_job_id=None)
        .execution_options(synchronize_session=False)
    )


def forget_workers(session: Session, *, older_than_s: float, now: datetime | None = None) -> int:
    """Delete the rows of workers not seen for `older_than_s` (stopped, or gone without a word); how many."""
    cutoff = (now or utcnow()) - timedelta(seconds=older_than_s)
    return affected_rows(session.execute(delete(Worker).where(Worker.last_seen_at < cutoff)))


def list_workers(session: Session, *, stale_after_s: float, now: datetime | None = None) -> list[WorkerView]:
    """Every worker in the table: running first, then idle, not responding and stopped."""
    now = now or utcnow()
    rows = session.execute(select(Worker, Job.kind).outerjoin(Job, Worker.current_job_id == Job.id)).all()
    views = [_view(worker, kind, now=now, stale_after_s=stale_after_s) for worker, kind in rows]
    return sorted(views, key=lambda v: (_ORDER[v.status], v.id))


def _view(worker: Worker, kind: JobKind | None, *, now: datetime, stale_after_s: float) -> WorkerView:
    status = status_of(worker, now=now, stale_after_s=stale_after_s)
    running = status in (WorkerStatus.running, WorkerStatus.not_responding) and worker.current_job_id is not None
    return WorkerView(
        id=worker.id,
        host=worker.host,
        pid=worker.pid,
        device=worker.device,
        kinds=list(worker.kinds),
        capabilities=dict(worker.capabilities),
        state=worker.state,
        status=status,
        current_job_id=worker.current_job_id if running else None,
        current_job_kind=kind if running else None,
        started_at=worker.started_at,
        last_seen_at=worker.last_seen_at,
        seen_s_ago=max((now - worker.last_seen_at).total_seconds(), 0.0),
    )
