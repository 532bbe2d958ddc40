"""Build tasks and rankings straight through the models, and an independent agreement reference."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from app.models import Assignment, AssignmentStatus, Ranking, RankingItem, RankingTask, TaskKind, User, utcnow
from app.services.prompts import get_or_create_prompt
from app.services.tasks import NewCompletion, create_task

_seq = itertools.count(1)


def make_task(
    db: Session,
    *,
    kind: TaskKind = TaskKind.production,
    k: int = 4,
    overlap: int = 1,
    messages: list[dict[str, str]] | None = None,
) -> RankingTask:
    n = next(_seq)
    if messages is None:
        prompt, _ = get_or_create_prompt(db, text=f"agreement prompt {n} {random.random()}")
    else:
        prompt, _ = get_or_create_prompt(db, messages=messages)
    return create_task(
        db,
        prompt=prompt,
        completions=[NewCompletion(text=f"answer {n}.{i}") for i in range(k)],
        kind=kind,
        overlap=overlap,
    )


def add_ranking(
    db: Session,
    *,
    task: RankingTask,
    user: User,
    order: Sequence[Sequence[int]],
    flags: dict[int, list[str]] | None = None,
    seconds: float | None = None,
    display: Sequence[int] | None = None,
    at: datetime | None = None,
) -> Ranking:
    """A ranking given as buckets of completion positions (0..k-1), best first."""
    ids = [item.completion_id for item in task.items]
    assignment = None
    if display is not None:
        assignment = Assignment(
            task_id=task.id,
            labeler_id=user.id,
            status=AssignmentStatus.submitted,
            display_order=[ids[i] for i in display],
            expires_at=utcnow(),
        )
        db.add(assignment)
        db.flush()
    ranking = Ranking(
        task_id=task.id,
        labeler_id=user.id,
        assignment_id=assignment.id if assignment else None,
        by_researcher=user.role.value != "labeler",
        buckets=[[ids[i] for i in bucket] for bucket in order],
        time_spent_ms=None if seconds is None else int(seconds * 1000),
        idempotency_key=f"k{next(_seq)}",
        created_at=at or utcnow(),
    )
    ranking.items = [
        RankingItem(completion_id=ids[i], rank=b, flags=list((flags or {}).get(i, [])))
        for b, bucket in enumerate(order)
        for i in bucket
    ]
    db.add(ranking)
    db.flush()
    return ranking


def reference_counts(
    x: Sequence[Sequence[int]], y: Sequence[Sequence[int]], *, peers: bool = False
) -> tuple[float, int]:
    """(credit, pairs counted) by a plain loop over item pairs; rankings as buckets of positions.

    x against the reference y: over y's strict pairs, same order 1, tied by x 0.5, reversed 0. With ``peers``: over
    the pairs either orders strictly, a pair tied by one of them 0.5.
    """
    rank_x = {item: b for b, bucket in enumerate(x) for item in bucket}
    rank_y = {item: b for b, bucket in enumerate(y) for item in bucket}
    items = sorted(rank_x)
    credit, counted = 0.0, 0
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            dx = rank_x[items[i]] - rank_x[items[j]]
            dy = rank_y[items[i]] - rank_y[items[j]]
            if dy == 0 and (dx == 0 or not peers):
                continue
            counted += 1
            credit += 0.5 if dx == 0 or dy == 0 else float((dx > 0) == (dy > 0))
    return credit, counted


def singletons(order: Sequence[int]) -> list[list[int]]:
    return [[i] for i in order]
