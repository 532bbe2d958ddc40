"""The database itself refuses unsound rows (SQLite and PostgreSQL), whatever the services above it do."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import Assignment, AssignmentStatus, Ranking, RankingItem, RankingTask, Schedule, utcnow
from tests.factories import make_task


def _refused(db: Session, write: Callable[[], object]) -> None:
    with pytest.raises(IntegrityError), db.begin_nested():
        write()
        db.flush()


def _assignment(task: RankingTask, labeler_id: int) -> Assignment:
    return Assignment(
        task_id=task.id, labeler_id=labeler_id, status=AssignmentStatus.active, display_order=[], expires_at=utcnow()
    )


def test_one_assignment_per_task_and_labeler(db, factory):
    task, labeler = make_task(db), factory.labeler()
    db.add(_assignment(task, labeler.id))
    db.flush()
    _refused(db, lambda: db.add(_assignment(task, labeler.id)))


def test_one_idempotency_key_per_labeler(db, factory):
    task, labeler = make_task(db), factory.labeler()
    db.add(Ranking(task_id=task.id, labeler_id=labeler.id, idempotency_key="k1"))
    db.flush()
    _refused(db, lambda: db.add(Ranking(task_id=task.id, labeler_id=labeler.id, idempotency_key="k1")))
    other = factory.labeler()  # the same key from someone else is fine
    db.add(Ranking(task_id=task.id, labeler_id=other.id, idempotency_key="k1"))
    db.flush()


@pytest.mark.parametrize("k", [3, 10])
def test_k_outside_4_to_9_is_refused(db, k):
    task = make_task(db)
    _refused(db, lambda: db.execute(update(RankingTask).where(RankingTask.id == task.id).values(k=k)))


@pytest.mark.parametrize("rating", [0, 8])
def test_rating_outside_1_to_7_is_refused(db, factory, rating):
    task, labeler = make_task(db), factory.labeler()
    ranking = Ranking(task_id=task.id, labeler_id=labeler.id, idempotency_key="r")
    db.add(ranking)
    db.flush()
    completion_id = task.items[0].completion_id
    _refused(db, lambda: db.add(RankingItem(ranking_id=ranking.id, completion_id=completion_id, rating=rating)))


def test_foreign_keys_are_enforced(db, factory):
    labeler = factory.labeler()
    _refused(db, lambda: db.add(Ranking(task_id=987654, labeler_id=labeler.id, idempotency_key="fk")))


def test_a_schedule_needs_a_trigger(db):
    _refused(db, lambda: db.add(Schedule(name="no-trigger", kind="export", params={})))
