"""Assignment policy: which task a labeler gets next, as a pipeline of small functions.

next_assignment = maybe_sweep -> held_or_lapsed (the live lease, or a lapsed one taken back)
                  | (candidate_kinds -> take_task -> lease).
Each step is a plain function so the screening issue can plug in its own kinds or a hidden-gold share.
The hot path is counted in statements: taking a task is one UPDATE ... RETURNING, and the prompt and
completions an assignment shows come back in one SELECT (`load_view`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, and_, case, exists, func, or_, select, union_all, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from app.config import Settings
from app.errors import Conflict, Forbidden, Gone, InvalidInput, NotFound
from app.models import (
    Assignment,
    AssignmentStatus,
    Completion,
    Prompt,
    Ranking,
    RankingTask,
    Role,
    TaskCompletion,
    TaskKind,
    TaskStatus,
    TaskType,
    User,
    UserStatus,
    utcnow,
)
from app.services import screening
from app.services import tasks as task_service
from app.services.lease_sweep import maybe_sweep, sweep_expired
from app.services.tasks import release_slots

OPEN_ENDED_KINDS = frozenset({TaskKind.gold, TaskKind.screening})
"""Kinds whose overlap is ignored: every researcher (gold) or screened labeler (screening) ranks them."""
LABELER_KINDS = frozenset({TaskKind.production, TaskKind.eval})
"""Kinds an active labeler is given (hidden gold is added by the screening feature)."""
RESEARCHER_KINDS = (TaskKind.gold, TaskKind.screening)
MAX_SKIP_REASON = 2000


@dataclass(frozen=True)
class AssignmentView:
    """What an assignment shows: the conversation and the completion texts by id, in task order."""

    prompt_id: int
    prompt_text: str
    prompt_messages: list[dict[str, str]]
    completions: dict[int, str]
    task_type: TaskType = TaskType.ranking
    kind: TaskKind = TaskKind.production


def candidate_kinds(labeler: User, settings: Settings) -> list[TaskKind]:
    """Task kinds this person may get now, most preferred first."""
    if labeler.role in (Role.researcher, Role.admin):
        return list(RESEARCHER_KINDS)
    if labeler.status == UserStatus.screening:
        return [TaskKind.screening]
    if labeler.status != UserStatus.active:
        return []
    return [TaskKind(k) for k in settings.task_kind_order if k in LABELER_KINDS]


def has_free_slot() -> ColumnElement[bool]:
    """SQL condition: the task still needs labelers (always true for open-ended kinds)."""
    return or_(RankingTask.slots_taken < RankingTask.overlap, RankingTask.kind.in_(OPEN_ENDED_KINDS))


def has_gold_answer() -> ColumnElement[bool]:
    """SQL condition: a researcher has ranked the task, so a labeler's ranking of it can be scored.

    Gold and screening tasks go to labelers only then; before, they are in researchers' queues alone.
    """
    return exists().where(and_(Ranking.task_id == RankingTask.id, Ranking.by_researcher.is_(True)))


def take_task(
    session: Session, *, labeler: User, kinds: list[TaskKind], types: list[TaskType] | None = None
) -> int | None:
    """Take a slot of the first open task of the first kind that has one, never one this labeler has seen.

    One statement for all kinds: UPDATE ... WHERE id = (one locked pick per kind, UNION ALL, LIMIT 1).
    PostgreSQL runs the branches in order and stops at the first row, so no task of a later kind is locked
    (a data-modifying statement never gets a parallel plan); SQLite reads compound selects left to right too.
    """
    if not kinds or types == []:
        return None
    picks = [
        pick_of_kind(labeler=labeler, kind=kind, types=types).subquery(f"pick_{i}") for i, kind in enumerate(kinds)
    ]
    first = union_all(*(select(pick.c.id) for pick in picks)).subquery("picks")
    stmt = (
        update(RankingTask)
        .where(RankingTask.id == select(first.c.id).limit(1).scalar_subquery())
        .values(slots_taken=RankingTask.slots_taken + 1)
        .returning(RankingTask.id)
    )
    return session.scalar(stmt)


def pick_of_kind(*, labeler: User, kind: TaskKind, types: list[TaskType] | None = None) -> Select[int]:
    """Highest priority, then newest, open task of one kind (and of these types, if given); row-locked, skipping
    rows others hold (PostgreSQL)."""
    seen = exists().where(and_(Assignment.task_id == RankingTask.id, Assignment.labeler_id == labeler.id))
    where = [RankingTask.status == TaskStatus.open, RankingTask.kind == kind, has_free_slot(), ~seen]
    if types is not None:
        where.append(RankingTask.task_type.in_(types))
    if kind in OPEN_ENDED_KINDS and labeler.role == Role.labeler:
        # a screening demonstration is judged by a researcher's review, not against a gold ranking
        where.append(or_(RankingTask.task_type == TaskType.demonstration, has_gold_answer()))
    return (
        select(RankingTask.id)
        .where(*where)
        .order_by(RankingTask.priority.desc(), RankingTask.id.desc())
        .limit(1)
        .with_for_update(skip_locked=True)
    )


def display_order(completion_ids: list[int], rng: random.Random | None = None) -> list[int]:
    """The task's completion ids shuffled for one labeler."""
    ids = list(completion_ids)
    (rng or random.SystemRandom()).shuffle(ids)
    return ids


def lease(
    session: Session,
    *,
    task_id: int,
    completion_ids: list[int],
    labeler: User,
    settings: Settings,
    now: datetime | None = None,
) -> Assignment:
    """Give the task (whose slot `take_task` took) to the labeler: record the shuffled order and the lease."""
    now = now or utcnow()
    assignment = Assignment(
        task_id=task_id,
        labeler_id=labeler.id,
        status=AssignmentStatus.active,
        display_order=display_order(completion_ids),
        created_at=now,
        expires_at=now + timedelta(minutes=settings.lease_minutes),
    )
    session.add(assignment)
    session.flush()
    return assignment


def held_or_lapsed(session: Session, *, labeler: User, settings: Settings, now: datetime) -> Assignment | None:
    """The labeler's live assignment; else their newest one whose lease ran out unsent, leased to them again when
    its task still has a free slot (nobody else took it): their draft of it is in their browser, so they get that
    task back rather than a new one. One statement when they hold a live lease (the hot path).

    Only a task of a kind they may still be given comes back (no screening task once screening is over).
    """
    live = Assignment.expires_at > now
    row = session.execute(
        select(Assignment, RankingTask.kind)
        .join(RankingTask, RankingTask.id == Assignment.task_id)
        .where(
            Assignment.labeler_id == labeler.id,
            Assignment.status.in_([AssignmentStatus.active, AssignmentStatus.expired]),
            Assignment.skip_reason.is_(None),
            or_(and_(Assignment.status == AssignmentStatus.active, live), RankingTask.status == TaskStatus.open),
        )
        # the live lease first (the newest: a researcher who chose a task to adjudicate gets it next)
        .order_by(case((and_(Assignment.status == AssignmentStatus.active, live), 0), else_=1), Assignment.id.desc())
        .limit(1)
        .with_for_update(of=Assignment)
        .execution_options(populate_existing=True)  # a sweep in this session updated rows behind the ORM's back
    ).first()
    if row is None:
        return None
    assignment, kind = row
    if assignment.status == AssignmentStatus.active and assignment.expires_at > now:
        return assignment
    if kind not in _kinds_ever_given(labeler, settings):
        return None
    if assignment.status == AssignmentStatus.expired and not _retake_slot(session, task_id=assignment.task_id):
        return None
    assignment.status = AssignmentStatus.active  # an unswept lapsed lease still holds its slot
    assignment.expires_at = now + timedelta(minutes=settings.lease_minutes)
    session.flush()
    return assignment


def _kinds_ever_given(labeler: User, settings: Settings) -> set[TaskKind]:
    """Every kind this person may be given now (hidden gold included for an active labeler)."""
    kinds = set(candidate_kinds(labeler, settings))
    if labeler.role == Role.labeler and labeler.status == UserStatus.active:
        kinds.add(TaskKind.gold)
    return kinds


def lock_labeler(session: Session, *, labeler: User) -> None:
    """Serialise one labeler's own `next` calls (PostgreSQL row lock; SQLite transactions are serial already)."""
    session.execute(select(User.id).where(User.id == labeler.id).with_for_update())


def next_assignment(
    session: Session,
    *,
    labeler: User,
    settings: Settings,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> Assignment | None:
    """The labeler's live assignment, or a newly leased one, or None when there is nothing to do."""
    got = next_assignment_view(session, labeler=labeler, settings=settings, now=now, rng=rng)
    return got[0] if got is not None else None


def next_assignment_view(
    session: Session,
    *,
    labeler: User,
    settings: Settings,
    now: datetime | None = None,
    rng: random.Random | None = None,
    task_type: TaskType | None = None,
) -> tuple[Assignment, AssignmentView] | None:
    """next_assignment together with what it shows (read in the same round trip that a new lease needs).
    ``task_type``: only tasks of this type (a labeler who wants to write demonstrations, or only to rank)."""
    now = now or utcnow()
    swept = maybe_sweep(session, now=now)
    lock_labeler(session, labeler=labeler)
    live = held_or_lapsed(session, labeler=labeler, settings=settings, now=now)
    if live is not None:
        return live, load_view(session, task_id=live.task_id)
    kinds = screening.with_hidden_gold(candidate_kinds(labeler, settings), labeler=labeler, settings=settings, rng=rng)
    types = screening.task_types_for(session, settings=settings, user=labeler)
    if task_type is not None:
        types = [t for t in (types if types is not None else list(TaskType)) if t == task_type]
    task_id = take_task(session, labeler=labeler, kinds=kinds, types=types)
    if task_id is None and not swept and sweep_expired(session, now=now):
        task_id = take_task(session, labeler=labeler, kinds=kinds, types=types)
    if task_id is None:
        return None
    view = load_view(session, task_id=task_id)
    assignment = lease(
        session, task_id=task_id, completion_ids=list(view.completions), labeler=labeler, settings=settings, now=now
    )
    return assignment, view


def adjudicate(
    session: Session, *, task_id: int, researcher: User, settings: Settings, now: datetime | None = None
) -> Assignment:
    """A researcher takes a disputed task to rank it themselves: it becomes gold (their ranking is the answer the
    labelers' rankings are scored against) and is leased to them now, so it is their next task on the ranking page.
    """
    now = now or utcnow()
    if researcher.role not in (Role.researcher, Role.admin):
        raise Forbidden("only researchers adjudicate tasks")
    task = task_service.get_task(session, task_id=task_id)
    if screening.can_promote_to_gold(task.kind):
        screening.promote_to_gold(session, task=task, actor=researcher)
    existing = session.scalar(
        select(Assignment).where(Assignment.task_id == task_id, Assignment.labeler_id == researcher.id)
    )
    if existing is None:
        ids = [item.completion_id for item in task.items]
        return lease(session, task_id=task_id, completion_ids=ids, labeler=researcher, settings=settings, now=now)
    if existing.status == AssignmentStatus.submitted:
        raise Conflict(f"you have already ranked task {task_id}; your ranking is the gold answer")
    # an earlier lease that expired or was skipped: lease it again
    existing.status, existing.skip_reason = AssignmentStatus.active, None
    existing.created_at, existing.expires_at = now, now + timedelta(minutes=settings.lease_minutes)
    session.flush()
    return existing


def renew_lease(
    session: Session, *, labeler: User, assignment_id: int, settings: Settings, now: datetime | None = None
) -> Assignment:
    """Extend the lease of the caller's assignment by `lease_minutes` from now (the ranking page is open and in use).

    A lease that already ran out is taken back when the task still has a free slot (nobody else took it), so a
    labeler who was away never loses a ranking they can still submit; otherwise Gone.
    """
    now = now or utcnow()
    assignment = get_own_assignment(session, labeler=labeler, assignment_id=assignment_id, lock=True)
    if assignment.status in (AssignmentStatus.submitted, AssignmentStatus.skipped):
        raise Conflict(f"assignment {assignment_id} is already {assignment.status.value}")
    if assignment.status == AssignmentStatus.expired and not _retake_slot(session, task_id=assignment.task_id):
        raise Gone(f"the lease on assignment {assignment_id} expired and the task went to other labelers")
    # an active lease, even one past its end that no sweep has seen yet, still holds its slot
    assignment.status = AssignmentStatus.active
    assignment.expires_at = now + timedelta(minutes=settings.lease_minutes)
    session.flush()
    return assignment


def _retake_slot(session: Session, *, task_id: int) -> bool:
    """Take one slot of the task again if it is open and has one free; returns whether it did."""
    stmt = (
        update(RankingTask)
        .where(RankingTask.id == task_id, RankingTask.status == TaskStatus.open, has_free_slot())
        .values(slots_taken=RankingTask.slots_taken + 1)
        .returning(RankingTask.id)
    )
    return session.scalar(stmt) is not None


def get_own_assignment(session: Session, *, labeler: User, assignment_id: int, lock: bool = False) -> Assignment:
    """The caller's assignment (row-locked if asked); 404 if missing, 403 if someone else's."""
    stmt = select(Assignment).where(Assignment.id == assignment_id).execution_options(populate_existing=True)
    assignment = session.scalars(stmt.with_for_update() if lock else stmt).first()
    if assignment is None:
        raise NotFound(f"no assignment with id {assignment_id}")
    if assignment.labeler_id != labeler.id:
        raise Forbidden(f"assignment {assignment_id} belongs to another labeler")
    return assignment


def skip_assignment(
    session: Session, *, labeler: User, assignment_id: int, reason: str, now: datetime | None = None
) -> Assignment:
    """Hand a live assignment back with a reason; the task returns to the pool for others."""
    now = now or utcnow()
    if not reason.strip():
        raise InvalidInput("say why you skip this task (reason is empty)")
    if len(reason) > MAX_SKIP_REASON:
        raise InvalidInput(f"the reason is longer than {MAX_SKIP_REASON} characters")
    assignment = get_own_assignment(session, labeler=labeler, assignment_id=assignment_id, lock=True)
    if assignment.status != AssignmentStatus.active:
        raise Conflict(f"assignment {assignment_id} is already {assignment.status.value}")
    assignment.status = AssignmentStatus.skipped if assignment.expires_at > now else AssignmentStatus.expired
    assignment.skip_reason = reason.strip()
    release_slots(session, task_ids=[assignment.task_id])
    session.flush()
    return assignment


def load_view(session: Session, *, task_id: int) -> AssignmentView:
    """The task's conversation and completion texts (in task order; a demonstration may have none), in one statement."""
    rows = session.execute(
        select(
            Prompt.id,
            Prompt.text,
            Prompt.messages,
            RankingTask.task_type,
            RankingTask.kind,
            TaskCompletion.completion_id,
            Completion.text,
        )
        .select_from(RankingTask)
        .join(Prompt, Prompt.id == RankingTask.prompt_id)
        .outerjoin(TaskCompletion, TaskCompletion.task_id == RankingTask.id)
        .outerjoin(Completion, Completion.id == TaskCompletion.completion_id)
        .where(RankingTask.id == task_id)
        .order_by(TaskCompletion.position)
    ).all()
    if not rows:
        raise NotFound(f"task {task_id} is gone")
    first = rows[0]
    return AssignmentView(
        prompt_id=first[0],
        prompt_text=first[1],
        prompt_messages=list(first[2]),
        completions={r[5]: r[6] for r in rows if r[5] is not None},
        task_type=first[3],
        kind=first[4],
    )


def count_open(session: Session, *, kind: TaskKind | None = None) -> int:
    """Open tasks (optionally of one kind) that still need labelers."""
    where = [RankingTask.status == TaskStatus.open, has_free_slot()]
    if kind is not None:
        where.append(RankingTask.kind == kind)
    return session.scalar(select(func.count()).select_from(RankingTask).where(*where)) or 0
