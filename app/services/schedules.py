"""Schedules: cron expressions and data triggers that queue jobs, evaluated by one worker at a time (a lease)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from croniter import CroniterBadDateError, croniter
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.models import Job, JobKind, JobStatus, Lease, Ranking, Schedule, User, utcnow
from app.services import jobs as job_service

SCHEDULER_LEASE = "scheduler"
logger = logging.getLogger("ranklab.schedules")


MIN_INTERVAL_S = 60.0
"""Default of RANKLAB_SCHEDULE_MIN_INTERVAL_S: no schedule fires more often than this."""
FIRINGS_CHECKED = 64
"""How many coming firings of a cron expression are looked at for its shortest gap."""


def check_cron(cron: str, *, min_interval_s: float = MIN_INTERVAL_S, now: datetime | None = None) -> str:
    """The expression if croniter accepts it, it fires at least once and never twice within `min_interval_s`;
    InvalidInput naming it otherwise."""
    cron = cron.strip()
    if not croniter.is_valid(cron):
        raise InvalidInput(f"cron: {cron!r} is not a valid cron expression (e.g. '0 3 * * *' = every day at 03:00)")
    now = now or utcnow()
    next_cron_time(cron, now)
    gap = shortest_gap_s(cron, now)
    if gap is not None and gap < min_interval_s:
        raise InvalidInput(
            f"cron: {cron!r} fires every {gap:g} s at times; a schedule may fire at most every {min_interval_s:g} s "
            "(the RANKLAB_SCHEDULE_MIN_INTERVAL_S setting)"
        )
    return cron


def shortest_gap_s(cron: str, after: datetime) -> float | None:
    """The shortest time between two of the next `FIRINGS_CHECKED` firings, in seconds (None if it fires once)."""
    times, it = [], croniter(cron, after)
    try:
        for _ in range(FIRINGS_CHECKED):
            times.append(it.get_next(datetime))
    except CroniterBadDateError:  # fires rarely (29 February): the firings found are enough
        pass
    return min(((b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)), default=None)


def _cron_or_none(cron: str | None, min_interval_s: float, now: datetime | None) -> str | None:
    """A checked cron expression, or None for a missing or blank one."""
    return check_cron(cron, min_interval_s=min_interval_s, now=now) if cron and cron.strip() else None


def next_cron_time(cron: str, after: datetime) -> datetime:
    """The first cron time strictly after `after` (UTC)."""
    try:
        result: datetime = croniter(cron, after).get_next(datetime)
    except CroniterBadDateError as exc:  # e.g. '0 0 30 2 *' (30 February)
        raise InvalidInput(f"cron: {cron!r} never fires (no such date)") from exc
    return result


def create_schedule(
    session: Session,
    *,
    name: str,
    kind: JobKind,
    params: dict[str, Any],
    cron: str | None = None,
    min_new_rankings: int | None = None,
    enabled: bool = True,
    now: datetime | None = None,
    min_interval_s: float = MIN_INTERVAL_S,
) -> Schedule:
    """A new schedule; it needs a cron expression, a data trigger, or both (then both must hold). A cron may not fire
    more often than every `min_interval_s` seconds."""
    cron = _cron_or_none(cron, min_interval_s, now)
    if cron is None and min_new_rankings is None:
        raise InvalidInput("a schedule needs a cron expression or min_new_rankings (or both)")
    if session.scalar(select(Schedule.id).where(Schedule.name == name)) is not None:
        raise Conflict(f"a schedule named {name!r} already exists")
    now = now or utcnow()
    schedule = Schedule(
        name=name,
        kind=kind,
        params=job_service.validate_params(session, kind=kind, params=params),
        cron=cron,
        min_new_rankings=min_new_rankings,
        enabled=enabled,
        next_run_at=next_cron_time(cron, now) if cron else None,
    )
    session.add(schedule)
    session.flush()
    return schedule


def get_schedule(session: Session, *, schedule_id: int) -> Schedule:
    """The schedule with this id, or NotFound."""
    schedule = session.get(Schedule, schedule_id)
    if schedule is None:
        raise NotFound(f"no schedule with id {schedule_id}")
    return schedule


def list_schedules(session: Session) -> list[Schedule]:
    """All schedules by name."""
    return list(session.scalars(select(Schedule).order_by(Schedule.name)))


def update_schedule(
    session: Session,
    *,
    schedule: Schedule,
    changes: dict[str, Any],
    now: datetime | None = None,
    min_interval_s: float = MIN_INTERVAL_S,
) -> Schedule:
    """Change params, triggers or enabled; only the keys present in `changes` are touched."""
    if "params" in changes and changes["params"] is not None:
        schedule.params = job_service.validate_params(session, kind=schedule.kind, params=changes["params"])
    if "cron" in changes:
        schedule.cron = _cron_or_none(changes["cron"], min_interval_s, now)
        schedule.next_run_at = next_cron_time(schedule.cron, now or utcnow()) if schedule.cron else None
    if "min_new_rankings" in changes:
        schedule.min_new_rankings = changes["min_new_rankings"]
    if changes.get("enabled") is not None:
        schedule.enabled = bool(changes["enabled"])
    if schedule.cron is None and schedule.min_new_rankings is None:
        raise InvalidInput("a schedule needs a cron expression or min_new_rankings (or both)")
    session.flush()
    return schedule


def delete_schedule(session: Session, *, schedule: Schedule) -> None:
    """Remove a schedule; the jobs it queued stay."""
    session.execute(update(Job).where(Job.schedule_id == schedule.id).values(schedule_id=None))
    session.delete(schedule)
    session.flush()


def acquire_lease(session: Session, *, name: str, holder: str, ttl_s: float, now: datetime | None = None) -> bool:
    """Take or renew the named lease; False while someone else holds an unexpired one."""
    now = now or utcnow()
    expires = now + timedelta(seconds=ttl_s)
    renewed = session.execute(
        update(Lease)
        .where(Lease.name == name, (Lease.holder == holder) | (Lease.expires_at < now))
        .values(holder=holder, expires_at=expires)
        .execution_options(synchronize_session=False)
    )
    if job_service.affected_rows(renewed) == 1:
        return True
    if session.get(Lease, name) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(Lease(name=name, holder=holder, expires_at=expires))
    except IntegrityError:
        return False  # another worker created it first
    return True


def release_lease(session: Session, *, name: str, holder: str) -> None:
    """Give the named lease up if `holder` has it (a worker that stops lets the next one schedule at once)."""
    session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))


def new_rankings_since(session: Session, *, kind: JobKind) -> int:
    """Rankings that arrived since the last (not failed/cancelled) job of this kind was queued."""
    last = session.scalar(
        select(func.max(Job.created_at)).where(
            Job.kind == kind, Job.status.in_([JobStatus.queued, JobStatus.running, JobStatus.succeeded])
        )
    )
    stmt = select(func.count()).select_from(Ranking)
    if last is not None:
        stmt = stmt.where(Ranking.created_at > last)
    return session.scalar(stmt) or 0


def _kind_busy(session: Session, kind: JobKind) -> bool:
    busy = select(Job.id).where(Job.kind == kind, Job.status.in_([JobStatus.queued, JobStatus.running]))
    return session.scalar(busy.limit(1)) is not None


def _unfinished_job(session: Session, schedule: Schedule) -> tuple[int, str] | None:
    """(id, status) of a job this schedule queued that is still queued or running, if any."""
    row = session.execute(
        select(Job.id, Job.status)
        .where(Job.schedule_id == schedule.id, Job.status.in_([JobStatus.queued, JobStatus.running]))
        .limit(1)
    ).first()
    return (row[0], row[1].value) if row is not None else None


def is_due(session: Session, *, schedule: Schedule, now: datetime) -> bool:
    """Cron time reached (if cron) and enough new rankings (if a data trigger)."""
    if not schedule.enabled:
        return False
    if schedule.cron and (schedule.next_run_at is None or schedule.next_run_at > now):
        return False
    if schedule.min_new_rankings is not None:
        if _kind_busy(session, schedule.kind):
            return False
        return new_rankings_since(session, kind=schedule.kind) >= schedule.min_new_rankings
    return True


def run_due_schedules(
    session: Session, *, now: datetime | None = None, created_by: User | None = None, max_attempts: int = 3
) -> list[Job]:
    """Queue one job for every due schedule and move its cron clock past `now`. Hold the scheduler lease."""
    now = now or utcnow()
    queued = []
    schedules = session.scalars(
        select(Schedule).where(Schedule.enabled.is_(True)).order_by(Schedule.id).with_for_update()
    ).all()
    for schedule in schedules:
        if not is_due(session, schedule=schedule, now=now):
            continue
        if schedule.cron:
            schedule.next_run_at = next_cron_time(schedule.cron, now)
        previous = _unfinished_job(session, schedule)
        if previous is not None:  # never two of a schedule's jobs at once: this period is skipped
            logger.info("schedule %r skips a run: its job %s is still %s", schedule.name, *previous)
            continue
        try:
            with session.begin_nested():
                job = job_service.enqueue_job(
                    session,
                    kind=schedule.kind,
                    params=dict(schedule.params),
                    created_by=created_by,
                    schedule_id=schedule.id,
                    max_attempts=max_attempts,
                )
        except InvalidInput as exc:  # e.g. a prompt or model it names was deleted: skip this period, keep going
            logger.warning("schedule %r could not queue its job: %s", schedule.name, exc.message)
            continue
        job_service.append_log(job, message=f"queued by schedule {schedule.name!r}")
        schedule.last_run_at, schedule.last_job_id = now, job.id
        queued.append(job)
    session.flush()
    return queued
