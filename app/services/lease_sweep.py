"""Expired leases: a labeler who walks away gives the task's slot back. Swept on `next` at most every SWEEP_EVERY per
process (and always before answering "nothing to do")."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.models import Assignment, AssignmentStatus, utcnow
from app.services.tasks import release_slots

SWEEP_EVERY = timedelta(seconds=5)
"""A process sweeps expired leases on `next` at most this often (and always before answering "nothing to do")."""
_last_sweep_at: datetime | None = None


def sweep_expired(session: Session, *, now: datetime | None = None) -> int:
    """Mark live assignments past their lease as expired and give their slots back; returns how many."""
    now = now or utcnow()
    rows = session.execute(
        update(Assignment)
        .where(Assignment.status == AssignmentStatus.active, Assignment.expires_at <= now)
        .values(status=AssignmentStatus.expired)
        .returning(Assignment.task_id)
        .execution_options(synchronize_session=False)
    ).all()
    release_slots(session, task_ids=[r[0] for r in rows])
    return len(rows)


def maybe_sweep(session: Session, *, now: datetime) -> bool:
    """Sweep unless this process swept less than SWEEP_EVERY ago; returns whether it swept.

    Skipping is safe: an unswept expired lease is never served as live (held_or_lapsed checks expires_at)
    nor accepted on submit; it only keeps its slot a few seconds longer.
    """
    global _last_sweep_at
    last = _last_sweep_at
    if last is not None and last <= now < last + SWEEP_EVERY:
        return False
    sweep_expired(session, now=now)
    _last_sweep_at = now
    return True
