"""Ranking submission: every check before anything is written, idempotent replays, task completion."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, time

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from app.config import Settings
from app.errors import Conflict, Gone, InvalidInput
from app.models import (
    FLAGS,
    MAX_RATING,
    MIN_RATING,
    Assignment,
    AssignmentStatus,
    Guideline,
    Ranking,
    RankingItem,
    RankingTask,
    Role,
    TaskCompletion,
    TaskStatus,
    TaskType,
    User,
    utcnow,
)
from app.services import screening
from app.services.assignment import OPEN_ENDED_KINDS, get_own_assignment

MAX_NOTE_CHARS = 5000
MAX_KEY_CHARS = 128


@dataclass
class RankingSubmission:
    """What a labeler sends: buckets of completion ids (best first, ties inside a bucket) and extras."""

    ranking: list[list[int]]
    idempotency_key: str
    not_rankable: bool = False
    ratings: dict[int, int] = field(default_factory=dict)
    flags: dict[int, list[str]] = field(default_factory=dict)
    note: str = ""


def check_buckets(buckets: list[list[int]], task_ids: list[int], *, not_rankable: bool) -> None:
    """The buckets hold exactly the task's completion ids, each once (may be empty when not rankable)."""
    if not buckets and not_rankable:
        return
    if not buckets:
        raise InvalidInput("the ranking is empty; rank every output or mark the task not rankable")
    if any(not bucket for bucket in buckets):
        raise InvalidInput("the ranking has an empty bucket; every rank must hold at least one output")
    given = [cid for bucket in buckets for cid in bucket]
    expected = set(task_ids)
    duplicated = sorted(cid for cid, n in Counter(given).items() if n > 1)
    unknown = sorted(set(given) - expected)
    missing = sorted(expected - set(given))
    problems = []
    if unknown:
        problems.append(f"ids not in this task: {unknown}")
    if duplicated:
        problems.append(f"ids given more than once: {duplicated}")
    if missing:
        problems.append(f"ids missing from the ranking: {missing}")
    if problems:
        raise InvalidInput("; ".join(problems) + f" (the task's outputs are {sorted(expected)})")


def check_ratings(ratings: dict[int, int], task_ids: list[int]) -> None:
    """Ratings are for this task's outputs and lie in 1..7."""
    unknown = sorted(set(ratings) - set(task_ids))
    if unknown:
        raise InvalidInput(f"ratings given for ids not in this task: {unknown}")
    bad = {cid: r for cid, r in ratings.items() if not (isinstance(r, int) and MIN_RATING <= r <= MAX_RATING)}
    if bad:
        raise InvalidInput(f"ratings must be whole numbers from {MIN_RATING} to {MAX_RATING}; got {bad}")


def check_flags(flags: dict[int, list[str]], task_ids: list[int]) -> None:
    """Flags are for this task's outputs and come from the InstructGPT set."""
    unknown_ids = sorted(set(flags) - set(task_ids))
    if unknown_ids:
        raise InvalidInput(f"flags given for ids not in this task: {unknown_ids}")
    unknown = sorted({f for names in flags.values() for f in names} - set(FLAGS))
    if unknown:
        raise InvalidInput(f"unknown flags {unknown}; allowed: {', '.join(FLAGS)}")


def check_submission(sub: RankingSubmission, task_ids: list[int]) -> None:
    """Every validation of the body, before anything is written."""
    if not sub.idempotency_key.strip() or len(sub.idempotency_key) > MAX_KEY_CHARS:
        raise InvalidInput(f"idempotency_key must be 1 to {MAX_KEY_CHARS} characters")
    if len(sub.note) > MAX_NOTE_CHARS:
        raise InvalidInput(f"the note is longer than {MAX_NOTE_CHARS} characters")
    check_buckets(sub.ranking, task_ids, not_rankable=sub.not_rankable)
    check_ratings(sub.ratings, task_ids)
    check_flags(sub.flags, task_ids)


def find_replay(session: Session, *, labeler: User, key: str, assignment_id: int) -> Ranking | None:
    """The ranking already stored under this key for this assignment (a replay), or None; Conflict if reused."""
    stored = session.scalar(select(Ranking).where(Ranking.labeler_id == labeler.id, Ranking.idempotency_key == key))
    if stored is None:
        return None
    if stored.assignment_id != assignment_id:
        raise Conflict(f"idempotency_key {key!r} was already used for another assignment")
    return stored


def check_assignment_open(assignment: Assignment, now: datetime) -> None:
    """The assignment can still take a ranking."""
    if assignment.status == AssignmentStatus.submitted:
        raise Conflict(f"assignment {assignment.id} was already submitted")
    if assignment.status == AssignmentStatus.skipped:
        raise Conflict(f"assignment {assignment.id} was skipped")
    if assignment.status == AssignmentStatus.expired or assignment.expires_at <= now:
        raise Gone(f"the lease on assignment {assignment.id} expired; get a new task")


def submit_ranking(
    session: Session,
    *,
    labeler: User,
    assignment_id: int,
    submission: RankingSubmission,
    settings: Settings,
    now: datetime | None = None,
) -> tuple[Ranking, bool]:
    """Store a ranking for the caller's live assignment; returns (ranking, replayed).

    The screening hook always runs (screening gate, hidden gold check, adaptive overlap): ``settings`` is required
    so that no caller skips them by accident.
    """
    now = now or utcnow()
    assignment = get_own_assignment(session, labeler=labeler, assignment_id=assignment_id, lock=True)
    replay = find_replay(session, labeler=labeler, key=submission.idempotency_key, assignment_id=assignment_id)
    if replay is not None:
        return replay, True
    check_assignment_open(assignment, now)
    task, task_ids, guideline_version = _lock_task(session, task_id=assignment.task_id)
    if task.task_type != TaskType.ranking:
        raise Conflict(f"task {task.id} asks for a demonstration (a written answer), not a ranking")
    check_submission(submission, task_ids)
    ranking = _store(
        session,
        labeler=labeler,
        assignment=assignment,
        submission=submission,
        task_ids=task_ids,
        guideline_version=guideline_version,
        now=now,
    )
    assignment.status = AssignmentStatus.submitted
    assignment.submitted_at = now
    session.flush()
    _maybe_complete(session, task=task)
    screening.after_submission(session, settings=settings, ranking=ranking)
    return ranking, False


def _lock_task(session: Session, *, task_id: int) -> tuple[RankingTask, list[int], int | None]:
    """Row-lock the task; return it with its completion ids (task order) and the current guideline version.

    One statement instead of three: the submit path is counted in round trips.
    """
    # the guideline version as guidelines.current_version reads it
    guideline_version = select(func.max(Guideline.version)).scalar_subquery()
    rows = session.execute(
        select(RankingTask, TaskCompletion.completion_id, guideline_version)
        .outerjoin(TaskCompletion, TaskCompletion.task_id == RankingTask.id)
        .where(RankingTask.id == task_id)
        .order_by(TaskCompletion.position)
        .with_for_update(of=RankingTask)
        .execution_options(populate_existing=True)
    ).all()
    if not rows:  # pragma: no cover - the assignment's foreign key guarantees the task
        raise Gone(f"task {task_id} is gone")
    return rows[0][0], [cid for _, cid, _ in rows if cid is not None], rows[0][2]


def _store(
    session: Session,
    *,
    labeler: User,
    assignment: Assignment,
    submission: RankingSubmission,
    task_ids: list[int],
    guideline_version: int | None,
    now: datetime,
) -> Ranking:
    rank_of = {cid: i for i, bucket in enumerate(submission.ranking) for cid in bucket}
    ranking = Ranking(
        assignment_id=assignment.id,
        task_id=assignment.task_id,
        labeler_id=labeler.id,
        by_researcher=labeler.role in (Role.researcher, Role.admin),
        buckets=[list(b) for b in submission.ranking],
        not_rankable=submission.not_rankable,
        note=submission.note.strip(),
        time_spent_ms=max(0, int((now - assignment.created_at).total_seconds() * 1000)),
        guideline_version=guideline_version,
        idempotency_key=submission.idempotency_key,
        created_at=now,
    )
    ranking.items = [
        RankingItem(
            completion_id=cid,
            rank=rank_of.get(cid),
            rating=submission.ratings.get(cid),
            flags=sorted(set(submission.flags.get(cid, []))),
        )
        for cid in task_ids
    ]
    session.add(ranking)
    return ranking


def _maybe_complete(session: Session, *, task: RankingTask) -> None:
    """Close the task once it has as many rankings as its overlap asks (open-ended kinds stay open)."""
    if task.kind in OPEN_ENDED_KINDS:
        return
    # The ranking just flushed counts itself, so an overlap of 1 is met without counting.
    if task.overlap > 1:
        done = session.scalar(select(func.count()).select_from(Ranking).where(Ranking.task_id == task.id)) or 0
        if done < task.overlap:
            return
    task.status = TaskStatus.complete
    session.flush()


def submitted_today(session: Session, *, labeler: User, now: datetime | None = None) -> int:
    """Rankings this person submitted since midnight UTC."""
    now = now or utcnow()
    midnight = datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)
    stmt = (
        select(func.count())
        .select_from(Ranking)
        .where(Ranking.labeler_id == labeler.id, Ranking.created_at >= midnight)
    )
    return session.scalar(stmt) or 0


def rankings_for_task(session: Session, *, task_id: int) -> list[tuple[Ranking, str]]:
    """Every ranking of a task with its author's username, oldest first."""
    stmt = (
        select(Ranking, User.username)
        .join(User, User.id == Ranking.labeler_id)
        .where(Ranking.task_id == task_id)
        .options(selectinload(Ranking.items))
        .order_by(Ranking.id)
    )
    return [(r, name) for r, name in session.execute(stmt).all()]
