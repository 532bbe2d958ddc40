"""Screening gate, researcher decisions, hidden gold checks, adaptive overlap and gold tasks.

``after_submission`` is the one hook the ranking submission calls: it runs the gate when a
screening labeler has ranked their screening set, re-checks an active labeler's rolling hidden
gold agreement, and gives a low-agreement task one more labeler.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import Conflict, InvalidInput
from app.models import (
    Assignment,
    AssignmentStatus,
    Ranking,
    RankingItem,
    RankingTask,
    Role,
    TaskKind,
    TaskStatus,
    TaskType,
    User,
    UserStatus,
    utcnow,
)
from app.schemas.agreement import ScreeningResultRead
from app.services import audit
from app.services import tasks as task_service
from app.services import users as user_service
from app.services.agreement import pairs as ap
from app.services.agreement import pooling
from app.services.agreement.flags import compared_flag_stats
from app.services.agreement.table import load_rankings
from app.services.screening_demonstrations import demonstration_screening
from app.services.tasks import ExternalTask

LabelerAction = Literal["approve", "reject", "pause", "resume"]


def screening_rankings_done(session: Session, *, user: User) -> int:
    """How many screening tasks this user has submitted a ranking for."""
    return (
        session.scalar(
            select(func.count(Ranking.id))
            .join(RankingTask, RankingTask.id == Ranking.task_id)
            .where(Ranking.labeler_id == user.id, RankingTask.kind == TaskKind.screening)
        )
        or 0
    )


def screening_tasks_remaining(session: Session, *, settings: Settings, user: User) -> int:
    """Screening tasks a labeler in screening still has to rank or write (0 for everybody else)."""
    if user.role != Role.labeler or user.status != UserStatus.screening:
        return 0
    demos = demonstration_screening(session, settings=settings, user=user)
    return max(0, settings.screening_set_size - screening_rankings_done(session, user=user)) + demos.to_write


def task_types_for(session: Session, *, settings: Settings, user: User) -> list[TaskType] | None:
    """The task types this person may be given now (None: any). Researchers rank (their gold answers); a labeler in
    screening gets what their screening set still lacks: rankings, then demonstrations."""
    if user.role in (Role.researcher, Role.admin):
        return [TaskType.ranking]
    if user.status != UserStatus.screening:
        return None
    if screening_rankings_done(session, user=user) < settings.screening_set_size:
        return [TaskType.ranking]
    if demonstration_screening(session, settings=settings, user=user).to_write:
        return [TaskType.demonstration]
    return []


def wants_hidden_gold(rng: random.Random, *, settings: Settings) -> bool:
    """Whether an active labeler's next task should be a hidden gold check (share `hidden_gold_share`)."""
    return rng.random() < settings.hidden_gold_share


def gold_agreement(
    session: Session, *, user: User, kinds: Sequence[TaskKind]
) -> tuple[pooling.Pooled, float | None, int]:
    """(pooled ranking agreement, flag agreement, tasks) of a user's rankings of gold-kind tasks with researchers':
    the labelers table's figure, restricted to these kinds."""
    table, pairs = pooling.user_table(session, user_id=user.id, kinds=kinds)
    units = pooling.user_units(table, ap.researcher_units(table, pairs), user_id=user.id)
    compared = [c for c in ap.researcher_comparisons(table, pairs) if c[0] == user.id]
    flags = compared_flag_stats(session, compared=compared).get(user.id)
    n_tasks = len(set(table.task_id[units.row].tolist()))
    return pooling.pooled_units(units), flags.agreement if flags else None, n_tasks


def evaluate_gate(session: Session, *, settings: Settings, user: User) -> ScreeningResultRead | None:
    """Once a screening labeler has ranked the screening set (and a researcher has reviewed the screening
    demonstrations it asks for): active at or above both cutoffs with every demonstration accepted, else pending
    review."""
    if user.role != Role.labeler or user.status != UserStatus.screening:
        return None
    if screening_rankings_done(session, user=user) < settings.screening_set_size:
        return None
    demos = demonstration_screening(session, settings=settings, user=user)
    if demos.to_write or demos.awaiting_review:
        return None
    ranking, flags, n_tasks = gold_agreement(session, user=user, kinds=(TaskKind.screening,))
    passed = (
        ranking.value is not None
        and ranking.value >= settings.screening_cutoff
        and (flags is None or flags >= settings.flag_cutoff)
        and demos.rejected == 0
    )
    user.screening_agreement = ranking.value
    user.screening_flag_agreement = flags
    user.screening_completed_at = utcnow()
    user_service.change_status(session, user=user, status=UserStatus.active if passed else UserStatus.pending_review)
    audit.record(
        session,
        actor=None,
        action="screening.gate",
        target=user,
        data={
            "ranking_agreement": ranking.value,
            "flag_agreement": flags,
            "tasks": n_tasks,
            "demonstrations_accepted": demos.accepted,
            "demonstrations_rejected": demos.rejected,
            "to": user.status.value,
        },
    )
    session.flush()
    return ScreeningResultRead(
        user_id=user.id, status=user.status, ranking_agreement=ranking.value, flag_agreement=flags, n_tasks=n_tasks
    )


_TRANSITIONS: dict[LabelerAction, tuple[tuple[UserStatus, ...], UserStatus]] = {
    "approve": ((UserStatus.screening, UserStatus.pending_review, UserStatus.rejected), UserStatus.active),
    "reject": ((UserStatus.screening, UserStatus.pending_review), UserStatus.rejected),
    "pause": ((UserStatus.active,), UserStatus.paused),
    "resume": ((UserStatus.paused,), UserStatus.active),
}


def allowed_actions(status: UserStatus) -> list[LabelerAction]:
    """The actions a labeler's status allows (what the labelers table offers), in ``_TRANSITIONS`` order."""
    return [action for action, (allowed, _) in _TRANSITIONS.items() if status in allowed]  # type: ignore[misc]


def act_on_labeler(session: Session, *, user: User, actor: User, action: LabelerAction, reason: str = "") -> User:
    """A researcher approves, rejects, pauses or resumes a labeler; the reason goes to the audit log."""
    if user.role != Role.labeler:
        raise InvalidInput(f"{user.username} is not a labeler")
    if action not in _TRANSITIONS:
        raise InvalidInput(f"unknown action {action!r}; use approve, reject, pause or resume")
    allowed, target = _TRANSITIONS[action]
    if user.status not in allowed:
        raise Conflict(f"cannot {action} {user.username}: their account is {user.status.value.replace('_', ' ')}")
    if action == "reject" and not reason.strip():
        raise InvalidInput("give a reason for rejecting a labeler; it is kept in the audit log")
    old = user.status
    user_service.change_status(session, user=user, status=target)
    if action in ("approve", "resume"):
        user.gold_alert = False
    audit.record(
        session,
        actor=actor,
        action=f"labeler.{action}",
        target=user,
        reason=reason.strip(),
        data={"from": old.value, "to": target.value},
    )
    session.flush()
    return user


def act_on_labeler_id(session: Session, *, user_id: int, actor: User, action: LabelerAction, reason: str = "") -> User:
    """act_on_labeler by user id (404 when there is no such user)."""
    return act_on_labeler(
        session, user=user_service.get_user(session, user_id=user_id), actor=actor, action=action, reason=reason
    )


def decide(session: Session, *, user_id: int, actor: User, approve: bool, reason: str = "") -> User:
    """A researcher's screening decision: approve (active) or reject (reason required)."""
    return act_on_labeler_id(
        session, user_id=user_id, actor=actor, action="approve" if approve else "reject", reason=reason
    )


def check_hidden_gold(session: Session, *, settings: Settings, user: User) -> float | None:
    """Re-check the rolling agreement over the last `gold_window` hidden gold tasks; flag (and maybe pause)."""
    if user.role != Role.labeler:
        return None
    table, pairs = pooling.user_table(session, user_id=user.id, kinds=(TaskKind.gold,))
    window = pooling.rolling_gold(table, ap.researcher_units(table, pairs), window=settings.gold_window).get(user.id)
    if window is None or window.value is None:
        return None
    rolling = window.value
    below = rolling < settings.screening_cutoff
    if below != user.gold_alert:
        user.gold_alert = below
        audit.record(
            session,
            actor=None,
            action="gold.alert" if below else "gold.recovered",
            target=user,
            data={"rolling_agreement": rolling, "window": window.n},
        )
    if below and settings.auto_pause and user.status == UserStatus.active:
        user_service.change_status(session, user=user, status=UserStatus.paused)
        audit.record(
            session,
            actor=None,
            action="labeler.auto_pause",
            target=user,
            reason=f"rolling gold agreement {rolling:.2f} under {settings.screening_cutoff:.2f}",
        )
    session.flush()
    return rolling


def adapt_overlap(session: Session, *, settings: Settings, task: RankingTask) -> bool:
    """Give a fully ranked overlap task one more labeler when its inter-labeler agreement is low."""
    if (
        task.overlap < 2
        or task.overlap >= settings.adaptive_overlap_max
        or task.kind not in (TaskKind.production, TaskKind.eval)
    ):
        return False
    table = load_rankings(session, task_ids=[task.id])
    if len(set(table.user_id[~table.by_researcher].tolist())) < task.overlap:
        return False
    pairs = ap.table_pairs(table)
    credit, comparable = ap.task_sums(table, pairs, ~table.by_researcher[pairs.i] & ~table.by_researcher[pairs.j]).get(
        task.id, (0.0, 0)
    )
    if not comparable or credit / comparable >= settings.adaptive_overlap_threshold:
        return False
    task.overlap += 1
    task.status = TaskStatus.open
    audit.record(
        session,
        actor=None,
        action="task.overlap",
        target=None,
        data={"task_id": task.id, "overlap": task.overlap, "agreement": credit / comparable},
    )
    session.flush()
    return True


def after_submission(session: Session, *, settings: Settings, ranking: Ranking) -> None:
    """Hook for the ranking submission: screening gate, hidden gold check, adaptive overlap."""
    user = session.get(User, ranking.labeler_id)
    task = session.get(RankingTask, ranking.task_id)
    if user is None or task is None or ranking.by_researcher:
        return
    if task.kind == TaskKind.screening:
        evaluate_gate(session, settings=settings, user=user)
    elif task.kind == TaskKind.gold:
        check_hidden_gold(session, settings=settings, user=user)
    else:
        adapt_overlap(session, settings=settings, task=task)


def can_promote_to_gold(kind: TaskKind) -> bool:
    """Whether a task of this kind can become a hidden gold task (gold and screening tasks already are gold kinds)."""
    return kind not in pooling.GOLD_KINDS


def promote_to_gold(session: Session, *, task: RankingTask, actor: User) -> RankingTask:
    """Turn a task into a hidden gold task; researchers are then served it to rank if they have not yet."""
    if not can_promote_to_gold(task.kind):
        raise Conflict(f"task {task.id} is already a {task.kind.value} task")
    old = task.kind
    task.kind = TaskKind.gold
    if task.status == TaskStatus.complete:
        # gold is open-ended: a task that met its overlap goes back into the researchers' queue for its answer
        task.status = TaskStatus.open
    audit.record(
        session, actor=actor, action="task.promote_gold", target=None, data={"task_id": task.id, "from": old.value}
    )
    session.flush()
    return task


def needs_gold_answer_from(session: Session, *, task: RankingTask, researcher: User) -> bool:
    """Whether this researcher can still give the gold task its answer: it is a gold kind, not archived, and they
    have not ranked it (the way to rank it is the adjudicate lease)."""
    if task.kind not in pooling.GOLD_KINDS or task.status == TaskStatus.archived:
        return False
    ranked = select(Ranking.id).where(Ranking.task_id == task.id, Ranking.labeler_id == researcher.id)
    return session.scalar(ranked.limit(1)) is None


def promote_task_id(session: Session, *, task_id: int, actor: User) -> RankingTask:
    """promote_to_gold by task id (404 when there is no such task)."""
    return promote_to_gold(session, task=task_service.get_task(session, task_id=task_id), actor=actor)


def import_gold_ranking(
    session: Session,
    *,
    task: RankingTask,
    researcher: User,
    gold_ranking: list[list[int]],
    flags: dict[int, list[str]] | None = None,
) -> Ranking:
    """Store a researcher's ranking given as buckets of completion indexes (0-based, best first)."""
    if task.kind not in pooling.GOLD_KINDS:
        raise InvalidInput("gold_ranking is only accepted for tasks of kind 'gold' or 'screening'")
    if researcher.role not in (Role.researcher, Role.admin):
        raise InvalidInput("only researchers can give a gold ranking")
    ids = [item.completion_id for item in task.items]
    seen = [i for bucket in gold_ranking for i in bucket]
    if sorted(seen) != list(range(len(ids))) or any(not bucket for bucket in gold_ranking):
        raise InvalidInput(
            f"gold_ranking must be non-empty buckets that hold each completion index 0..{len(ids) - 1} exactly once"
        )
    taken = select(Assignment.id).where(Assignment.task_id == task.id, Assignment.labeler_id == researcher.id)
    if session.scalar(select(Ranking.id).where(Ranking.task_id == task.id, Ranking.labeler_id == researcher.id)) or (
        session.scalar(taken)
    ):
        raise Conflict(f"{researcher.username} has already ranked task {task.id}")
    now = utcnow()
    # A submitted assignment keeps the assignment policy from serving this task to the researcher again.
    assignment = Assignment(
        task_id=task.id,
        labeler_id=researcher.id,
        status=AssignmentStatus.submitted,
        display_order=ids,
        created_at=now,
        expires_at=now,
        submitted_at=now,
    )
    session.add(assignment)
    session.flush()
    ranking = Ranking(
        assignment_id=assignment.id,
        task_id=task.id,
        labeler_id=researcher.id,
        by_researcher=True,
        created_at=now,
        buckets=[[ids[i] for i in bucket] for bucket in gold_ranking],
        idempotency_key=f"gold-import-{task.id}",
    )
    ranking.items = [
        RankingItem(completion_id=ids[i], rank=b, flags=list((flags or {}).get(i, [])))
        for b, bucket in enumerate(gold_ranking)
        for i in bucket
    ]
    session.add(ranking)
    session.flush()
    return ranking


def create_task_with_gold(
    session: Session, *, spec: ExternalTask, gold_ranking: list[list[int]] | None, created_by: User
) -> RankingTask:
    """POST /api/v1/tasks: create a task and, when given (gold and screening kinds), the researcher's gold ranking."""
    if gold_ranking is not None and spec.kind not in pooling.GOLD_KINDS:
        raise InvalidInput("gold_ranking is only accepted for tasks of kind 'gold' or 'screening'")
    task = task_service.create_external_task(session, spec=spec, created_by=created_by)
    if gold_ranking is not None:
        import_gold_ranking(session, task=task, researcher=created_by, gold_ranking=gold_ranking)
    return task


_RNG = random.SystemRandom()


def with_hidden_gold(
    kinds: list[TaskKind], *, labeler: User, settings: Settings, rng: random.Random | None = None
) -> list[TaskKind]:
    """For an active labeler, put hidden gold first with probability `hidden_gold_share` (seed `rng` in tests)."""
    if labeler.role != Role.labeler or labeler.status != UserStatus.active or not kinds:
        return kinds
    if wants_hidden_gold(rng or _RNG, settings=settings):
        return [TaskKind.gold, *kinds]
    return kinds
