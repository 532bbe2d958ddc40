"""Ranking tasks: creation from completions (ours or sampled elsewhere), look-up and listing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from app.errors import InvalidInput, NotFound
from app.models import (
    MAX_K,
    MAX_OVERLAP,
    MAX_PRIORITY,
    MIN_K,
    Assignment,
    AssignmentStatus,
    Completion,
    Prompt,
    PromptSource,
    Ranking,
    RankingTask,
    TaskCompletion,
    TaskKind,
    TaskStatus,
    User,
)
from app.services import conversations
from app.services import prompts as prompt_service

MAX_COMPLETION_CHARS = 100_000


@dataclass
class NewCompletion:
    """One completion to store with a new task."""

    text: str
    sampling_params: dict[str, Any] = field(default_factory=dict)
    token_count: int | None = None
    finish_reason: str | None = None
    model_version_id: int | None = None
    """The model that wrote it, when the task mixes models (eval tasks); default: the task's model."""


def check_k(count: int) -> None:
    """InvalidInput unless a task would have between MIN_K and MAX_K completions."""
    if not MIN_K <= count <= MAX_K:
        raise InvalidInput(f"a ranking task needs {MIN_K} to {MAX_K} completions, got {count}")


def check_overlap_priority(overlap: Any, priority: Any = 0) -> None:
    """InvalidInput unless overlap is a whole number in 1..MAX_OVERLAP and priority one within +-MAX_PRIORITY."""
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 1 <= overlap <= MAX_OVERLAP:
        raise InvalidInput(f"'overlap' must be a whole number from 1 to {MAX_OVERLAP}, got {overlap!r}")
    if isinstance(priority, bool) or not isinstance(priority, int) or abs(priority) > MAX_PRIORITY:
        raise InvalidInput(
            f"'priority' must be a whole number from -{MAX_PRIORITY} to {MAX_PRIORITY}, got {priority!r}"
        )


def check_completion_text(text: Any, index: int) -> None:
    """InvalidInput unless the completion text is a string of sensible size."""
    if not isinstance(text, str):
        raise InvalidInput(f"completion {index + 1} is not text")
    if not text.strip():
        raise InvalidInput(f"completion {index + 1} is empty")
    if len(text) > MAX_COMPLETION_CHARS:
        raise InvalidInput(f"completion {index + 1} is longer than {MAX_COMPLETION_CHARS} characters")
    if "\x00" in text:
        raise InvalidInput(f"completion {index + 1} contains a NUL character (\\x00), which cannot be stored")


def create_task(
    session: Session,
    *,
    prompt: Prompt,
    completions: list[NewCompletion],
    kind: TaskKind = TaskKind.production,
    overlap: int = 1,
    model_version_id: int | None = None,
    model_name: str = "",
    job_id: int | None = None,
    created_by: User | None = None,
    priority: int = 0,
) -> RankingTask:
    """Store the completions and a task ranking them, in the order given."""
    check_k(len(completions))
    for i, c in enumerate(completions):
        check_completion_text(c.text, i)
    if overlap < 1:
        raise InvalidInput(f"overlap must be at least 1, got {overlap}")
    rows = [
        Completion(
            prompt_id=prompt.id,
            model_version_id=c.model_version_id if c.model_version_id is not None else model_version_id,
            model_name=model_name,
            text=c.text,
            sampling_params=dict(c.sampling_params),
            token_count=c.token_count,
            finish_reason=c.finish_reason,
        )
        for c in completions
    ]
    session.add_all(rows)
    session.flush()
    task = RankingTask(
        prompt_id=prompt.id,
        kind=kind,
        status=TaskStatus.open,
        k=len(rows),
        overlap=overlap,
        slots_taken=0,
        priority=priority,
        model_version_id=model_version_id,
        job_id=job_id,
        created_by_id=created_by.id if created_by else None,
    )
    task.items = [TaskCompletion(position=i, completion_id=c.id) for i, c in enumerate(rows)]
    session.add(task)
    session.flush()
    return task


@dataclass
class ExternalTask:
    """A task sampled elsewhere: prompt id, text or conversation (messages), completion texts, model name."""

    prompt: str | int | list[Any]
    completions: list[str]
    model: str = ""
    kind: TaskKind = TaskKind.production
    overlap: int = 1
    priority: int = 0


def resolve_prompt(session: Session, *, prompt: str | int | list[Any], created_by: User | None) -> Prompt:
    """An existing prompt by id, or the prompt with this text or conversation (created from the API if new)."""
    if isinstance(prompt, int):
        return prompt_service.get_prompt(session, prompt_id=prompt)
    messages = prompt_service.messages_of(None, prompt) if isinstance(prompt, list) else conversations.from_text(prompt)
    found, _ = prompt_service.get_or_create_prompt(
        session, messages=messages, source=PromptSource.api, created_by=created_by
    )
    return found


def create_external_task(session: Session, *, spec: ExternalTask, created_by: User | None) -> RankingTask:
    """Create one task from outside samples (the API and the JSONL bulk import)."""
    check_k(len(spec.completions))
    prompt = resolve_prompt(session, prompt=spec.prompt, created_by=created_by)
    return create_task(
        session,
        prompt=prompt,
        completions=[NewCompletion(text=t) for t in spec.completions],
        kind=spec.kind,
        overlap=spec.overlap,
        model_name=spec.model,
        created_by=created_by,
        priority=spec.priority,
    )


def create_external_tasks(
    session: Session, *, specs: Sequence[ExternalTask], created_by: User | None
) -> list[RankingTask]:
    """Create a batch of tasks; any bad entry rejects the whole batch with its number."""
    problems = []
    for i, spec in enumerate(specs):
        try:
            check_k(len(spec.completions))
            for j, text in enumerate(spec.completions):
                check_completion_text(text, j)
            if isinstance(spec.prompt, str):
                conversations.from_text(spec.prompt)
            elif isinstance(spec.prompt, list):
                conversations.check_messages(spec.prompt)
            check_overlap_priority(spec.overlap, spec.priority)
        except InvalidInput as exc:
            problems.append(f"task {i + 1}: {exc.message}")
    if problems:
        raise InvalidInput("nothing was imported: " + "; ".join(problems[:20]))
    return [create_external_task(session, spec=s, created_by=created_by) for s in specs]


def release_slots(session: Session, *, task_ids: list[int]) -> None:
    """Give back one slot per entry (a task id may repeat), in id order to keep lock order stable."""
    for task_id, n in sorted(Counter(task_ids).items()):
        session.execute(
            update(RankingTask).where(RankingTask.id == task_id).values(slots_taken=RankingTask.slots_taken - n)
        )


def release_held_assignments(session: Session, *, labeler_id: int) -> int:
    """Hand back every live assignment of a labeler who may no longer rank (paused, suspended...); returns how many."""
    rows = session.execute(
        update(Assignment)
        .where(Assignment.labeler_id == labeler_id, Assignment.status == AssignmentStatus.active)
        .values(status=AssignmentStatus.expired)
        .returning(Assignment.task_id)
        .execution_options(synchronize_session=False)
    ).all()
    release_slots(session, task_ids=[r[0] for r in rows])
    return len(rows)


def get_task(session: Session, *, task_id: int) -> RankingTask:
    """The task with this id (items loaded), or NotFound."""
    task = session.scalar(
        select(RankingTask)
        .where(RankingTask.id == task_id)
        .options(selectinload(RankingTask.items).selectinload(TaskCompletion.completion))
    )
    if task is None:
        raise NotFound(f"no ranking task with id {task_id}")
    return task


def completion_ids(task: RankingTask) -> list[int]:
    """The task's completion ids in their stored order."""
    return [item.completion_id for item in task.items]


def list_tasks(
    session: Session,
    *,
    kind: TaskKind | None = None,
    status: TaskStatus | None = None,
    query: str = "",
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[tuple[RankingTask, Prompt, int]], int]:
    """Tasks with their prompt and number of rankings, newest first, plus the total count."""
    where = []
    if kind is not None:
        where.append(RankingTask.kind == kind)
    if status is not None:
        where.append(RankingTask.status == status)
    query = prompt_service.check_search(query)
    if query:
        where.append(Prompt.text.icontains(query, autoescape=True))
    base = select(RankingTask).join(Prompt, Prompt.id == RankingTask.prompt_id).where(*where)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    n_rankings = (
        select(func.count(Ranking.id)).where(Ranking.task_id == RankingTask.id).correlate(RankingTask).scalar_subquery()
    )
    stmt = (
        select(RankingTask, Prompt, n_rankings)
        .join(Prompt, Prompt.id == RankingTask.prompt_id)
        .where(*where)
        .order_by(RankingTask.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [(t, p, int(n)) for t, p, n in session.execute(stmt).all()], total
