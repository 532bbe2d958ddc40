"""Demonstrations, the labeler's side: tasks made from prompts, a written answer submitted, revised within the window.

A demonstration task is a `RankingTask` of type `demonstration`: it goes through the same queue, leases, skips,
overlap and screening set as a ranking task; its 0-9 outputs are sampled answers the labeler may start from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.models import (
    MAX_K,
    AssignmentStatus,
    Completion,
    Demonstration,
    DemonstrationOrigin,
    DemonstrationStatus,
    Prompt,
    RankingTask,
    TaskCompletion,
    TaskKind,
    TaskStatus,
    TaskType,
    User,
    utcnow,
)
from app.services import audit, screening
from app.services import tasks as task_service
from app.services.assignment import OPEN_ENDED_KINDS, get_own_assignment
from app.services.rankings import MAX_KEY_CHARS, _lock_task, check_assignment_open

MAX_DEMONSTRATION_CHARS = 50_000
DEMONSTRATION_KINDS = (TaskKind.production, TaskKind.screening)
"""Demonstrations are production work or part of a new labeler's screening (a researcher reviews them)."""


@dataclass
class DemonstrationSubmission:
    """What a labeler sends: the answer, the output it was rewritten from (if any), an idempotency key."""

    content: str
    idempotency_key: str
    source_completion_id: int | None = None


def check_content(content: object) -> str:
    """The answer if it is usable text; InvalidInput otherwise."""
    if not isinstance(content, str) or not content.strip():
        raise InvalidInput("the demonstration is empty: write the assistant's answer")
    if len(content) > MAX_DEMONSTRATION_CHARS:
        raise InvalidInput(f"the demonstration is longer than {MAX_DEMONSTRATION_CHARS} characters")
    if "\x00" in content:
        raise InvalidInput("the demonstration contains a NUL character (\\x00), which cannot be stored")
    return content.strip()


def parse_prompt_ids(text: str) -> list[int]:
    """Prompt ids written as a list (commas, spaces or new lines between them); InvalidInput naming a bad one."""
    ids = []
    for word in text.replace(",", " ").split():
        if not word.isdigit() or int(word) < 1:
            raise InvalidInput(f"{word[:40]!r} is not a prompt id (a whole number from 1)")
        ids.append(int(word))
    return ids


def create_demonstration_tasks(
    session: Session,
    *,
    prompt_ids: Sequence[int],
    created_by: User | None,
    kind: TaskKind = TaskKind.production,
    overlap: int = 1,
    starting_points: int = 0,
    priority: int = 0,
) -> list[RankingTask]:
    """One demonstration task per prompt (in the order given), each offering up to ``starting_points`` of the
    prompt's newest sampled outputs to rewrite. The whole batch is checked before anything is written."""
    if kind not in DEMONSTRATION_KINDS:
        raise InvalidInput(f"demonstration tasks are production or screening tasks, not {kind.value}")
    task_service.check_overlap_priority(overlap, priority)
    if isinstance(starting_points, bool) or not 0 <= starting_points <= MAX_K:
        raise InvalidInput(f"'starting_points' must be a whole number from 0 to {MAX_K}, got {starting_points!r}")
    if not prompt_ids:
        raise InvalidInput("give at least one prompt id")
    ids = list(dict.fromkeys(prompt_ids))
    found = set(session.scalars(select(Prompt.id).where(Prompt.id.in_(ids))))
    missing = [i for i in ids if i not in found]
    if missing:
        raise InvalidInput(f"nothing was created: there are no prompts with ids {missing[:20]}")
    tasks = []
    for prompt_id in ids:
        outputs = _newest_outputs(session, prompt_id=prompt_id, limit=starting_points)
        task = RankingTask(
            prompt_id=prompt_id,
            kind=kind,
            task_type=TaskType.demonstration,
            status=TaskStatus.open,
            k=len(outputs),
            overlap=overlap,
            slots_taken=0,
            priority=priority,
            created_by_id=created_by.id if created_by else None,
        )
        task.items = [TaskCompletion(position=i, completion_id=cid) for i, cid in enumerate(outputs)]
        session.add(task)
        tasks.append(task)
    session.flush()
    audit.record(
        session,
        actor=created_by,
        action="demonstration.tasks",
        target=None,
        data={"tasks": len(tasks), "kind": kind.value, "overlap": overlap, "starting_points": starting_points},
    )
    return tasks


def _newest_outputs(session: Session, *, prompt_id: int, limit: int) -> list[int]:
    """Ids of the prompt's newest non-empty sampled outputs, at most ``limit``."""
    if limit == 0:
        return []
    stmt = (
        select(Completion.id)
        .where(Completion.prompt_id == prompt_id, func.length(func.trim(Completion.text)) > 0)
        .order_by(Completion.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def submit_demonstration(
    session: Session,
    *,
    labeler: User,
    assignment_id: int,
    submission: DemonstrationSubmission,
    settings: Settings,
    now: datetime | None = None,
) -> tuple[Demonstration, bool]:
    """Store the written answer for the caller's live demonstration assignment; returns (demonstration, replayed)."""
    now = now or utcnow()
    key = submission.idempotency_key
    if not key.strip() or len(key) > MAX_KEY_CHARS:
        raise InvalidInput(f"idempotency_key must be 1 to {MAX_KEY_CHARS} characters")
    assignment = get_own_assignment(session, labeler=labeler, assignment_id=assignment_id, lock=True)
    stored = session.scalar(
        select(Demonstration).where(Demonstration.labeler_id == labeler.id, Demonstration.idempotency_key == key)
    )
    if stored is not None:
        if stored.assignment_id != assignment_id:
            raise Conflict(f"idempotency_key {key!r} was already used for another assignment")
        return stored, True
    check_assignment_open(assignment, now)
    task, output_ids, guideline_version = _lock_task(session, task_id=assignment.task_id)
    if task.task_type != TaskType.demonstration:
        raise Conflict(f"task {task.id} asks for a ranking of its outputs, not a demonstration")
    content = check_content(submission.content)
    origin = _origin(submission.source_completion_id, output_ids)
    demonstration = Demonstration(
        assignment_id=assignment.id,
        task_id=task.id,
        prompt_id=task.prompt_id,
        labeler_id=labeler.id,
        content=content,
        origin=origin,
        source_completion_id=submission.source_completion_id,
        status=DemonstrationStatus.submitted,
        time_spent_ms=max(0, int((now - assignment.created_at).total_seconds() * 1000)),
        guideline_version=guideline_version,
        idempotency_key=key,
        created_at=now,
    )
    session.add(demonstration)
    assignment.status, assignment.submitted_at = AssignmentStatus.submitted, now
    session.flush()
    _maybe_complete(session, task=task)
    if task.kind == TaskKind.screening:
        screening.evaluate_gate(session, settings=settings, user=labeler)
    return demonstration, False


def _origin(source_completion_id: int | None, output_ids: list[int]) -> DemonstrationOrigin:
    if source_completion_id is None:
        return DemonstrationOrigin.written
    if source_completion_id not in output_ids:
        raise InvalidInput(
            f"output {source_completion_id} is not one of this task's outputs {sorted(output_ids)}; "
            "a demonstration can only be rewritten from one of them"
        )
    return DemonstrationOrigin.rewritten


def _maybe_complete(session: Session, *, task: RankingTask) -> None:
    """Close the task once it has as many demonstrations as its overlap asks (screening tasks stay open)."""
    if task.kind in OPEN_ENDED_KINDS:
        return
    done = session.scalar(select(func.count()).select_from(Demonstration).where(Demonstration.task_id == task.id))
    if (done or 0) >= task.overlap:
        task.status = TaskStatus.complete
        session.flush()


@dataclass(frozen=True)
class OwnDemonstration:
    """One of the labeler's demonstrations, as their history lists it."""

    demonstration: Demonstration
    prompt_text: str
    revisable_until: datetime | None
    prompt_messages: list[dict[str, str]]
    """The conversation it answers (the ranking page shows it again to revise)."""


def revisable_until(demo: Demonstration, kind: TaskKind, now: datetime, window: timedelta) -> datetime | None:
    """End of the revision window; None once it passed, once reviewed, or for screening (a researcher judges it)."""
    end = demo.created_at + window
    if kind == TaskKind.screening or demo.status != DemonstrationStatus.submitted or end <= now:
        return None
    return end


def recent_demonstrations(
    session: Session, *, labeler: User, window: timedelta, limit: int = 10, now: datetime | None = None
) -> list[OwnDemonstration]:
    """The labeler's newest demonstrations, newest first."""
    now = now or utcnow()
    rows = session.execute(
        select(Demonstration, Prompt.text, RankingTask.kind, Prompt.messages)
        .join(RankingTask, RankingTask.id == Demonstration.task_id)
        .join(Prompt, Prompt.id == Demonstration.prompt_id)
        .where(Demonstration.labeler_id == labeler.id)
        .order_by(Demonstration.id.desc())
        .limit(limit)
    ).all()
    return [
        OwnDemonstration(d, text, revisable_until(d, kind, now, window), list(messages))
        for d, text, kind, messages in rows
    ]


def revise_demonstration(
    session: Session,
    *,
    labeler: User,
    demonstration_id: int,
    content: str,
    source_completion_id: int | None,
    window: timedelta,
    now: datetime | None = None,
) -> Demonstration:
    """Correct one's own demonstration within the window, before review; the replaced text goes to the audit log."""
    now = now or utcnow()
    demo = session.scalar(select(Demonstration).where(Demonstration.id == demonstration_id).with_for_update())
    if demo is None:
        raise NotFound(f"no demonstration with id {demonstration_id}")
    if demo.labeler_id != labeler.id:
        raise Forbidden(f"demonstration {demonstration_id} belongs to another labeler")
    task, output_ids, _ = _lock_task(session, task_id=demo.task_id)
    if revisable_until(demo, task.kind, now, window) is None:
        raise Conflict(
            f"demonstration {demonstration_id} can no longer be revised (reviewed, a screening task, or sent more "
            f"than {int(window.total_seconds() // 60)} minutes ago)"
        )
    new_content = check_content(content)
    origin = _origin(source_completion_id, output_ids)
    audit.record(
        session,
        actor=labeler,
        action="demonstration.revise",
        target=labeler,
        data={"demonstration_id": demo.id, "content": demo.content, "source_completion_id": demo.source_completion_id},
    )
    demo.content, demo.origin, demo.source_completion_id = new_content, origin, source_completion_id
    demo.updated_at = now
    session.flush()
    return demo
