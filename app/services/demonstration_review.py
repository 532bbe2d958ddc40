"""Demonstrations, the researcher's side: listing, review (accept / reject with a reason / edit), per-labeler figures.

A review of a screening demonstration re-runs the screening gate for its author, who passes only once every screening
demonstration has been accepted (and their rankings meet the cutoffs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import InvalidInput, NotFound
from app.metrics.intervals import ratio_interval
from app.models import (
    Completion,
    Demonstration,
    DemonstrationOrigin,
    DemonstrationStatus,
    Prompt,
    RankingTask,
    TaskKind,
    User,
    utcnow,
)
from app.services import audit, screening
from app.services.demonstrations import check_content

ReviewAction = Literal["accept", "reject", "edit"]
MAX_REASON_CHARS = 2000


def get_demonstration(session: Session, *, demonstration_id: int, lock: bool = False) -> Demonstration:
    """The demonstration with this id, or NotFound."""
    stmt = select(Demonstration).where(Demonstration.id == demonstration_id)
    demo = session.scalar(stmt.with_for_update() if lock else stmt)
    if demo is None:
        raise NotFound(f"no demonstration with id {demonstration_id}")
    return demo


@dataclass(frozen=True)
class ListedDemonstration:
    """A demonstration with its conversation, author, task kind and the output it was rewritten from."""

    demonstration: Demonstration
    prompt: Prompt
    username: str
    task_kind: TaskKind
    source_text: str | None


def list_demonstrations(
    session: Session,
    *,
    status: DemonstrationStatus | None = None,
    labeler_id: int | None = None,
    task_id: int | None = None,
    only_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[ListedDemonstration], int]:
    """Demonstrations (oldest first when waiting for review, newest first otherwise) with what a reviewer sees beside
    them, and the total count."""
    where = []
    if status is not None:
        where.append(Demonstration.status == status)
    if labeler_id is not None:
        where.append(Demonstration.labeler_id == labeler_id)
    if task_id is not None:
        where.append(Demonstration.task_id == task_id)
    if only_id is not None:
        where.append(Demonstration.id == only_id)
    total = session.scalar(select(func.count()).select_from(Demonstration).where(*where)) or 0
    order = Demonstration.id.asc() if status == DemonstrationStatus.submitted else Demonstration.id.desc()
    rows = session.execute(
        select(Demonstration, Prompt, User.username, RankingTask.kind, Completion.text)
        .join(Prompt, Prompt.id == Demonstration.prompt_id)
        .join(User, User.id == Demonstration.labeler_id)
        .join(RankingTask, RankingTask.id == Demonstration.task_id)
        .outerjoin(Completion, Completion.id == Demonstration.source_completion_id)
        .where(*where)
        .order_by(order)
        .limit(limit)
        .offset(offset)
    ).all()
    return [ListedDemonstration(*row) for row in rows], total


def review(
    session: Session,
    *,
    demonstration_id: int,
    reviewer: User,
    action: ReviewAction,
    settings: Settings,
    reason: str = "",
    content: str | None = None,
    now: datetime | None = None,
) -> Demonstration:
    """Accept, reject (a reason is required) or edit-and-accept a demonstration; every decision is audited and a
    decision may be changed later (the audit log keeps each one)."""
    now = now or utcnow()
    if action not in ("accept", "reject", "edit"):
        raise InvalidInput(f"unknown action {action!r}; use accept, reject or edit")
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInput(f"the reason is longer than {MAX_REASON_CHARS} characters")
    if action == "reject" and not reason.strip():
        raise InvalidInput("say why the demonstration is rejected (the labeler sees the reason)")
    new_content = check_content(content) if action == "edit" else None
    if action != "edit" and content is not None:
        raise InvalidInput("'content' is only for the edit action")
    demo = get_demonstration(session, demonstration_id=demonstration_id, lock=True)
    before = {"status": demo.status.value, "content": demo.content if new_content is not None else None}
    if new_content is not None:
        if new_content == demo.content:
            raise InvalidInput("the edited text is the same as the demonstration; use accept instead")
        if demo.original_content is None:
            demo.original_content = demo.content
        demo.content = new_content
    demo.status = DemonstrationStatus.rejected if action == "reject" else DemonstrationStatus.accepted
    demo.review_reason = reason.strip()
    demo.reviewer_id, demo.reviewed_at, demo.updated_at = reviewer.id, now, now
    audit.record(
        session,
        actor=reviewer,
        action=f"demonstration.{action}",
        target=session.get(User, demo.labeler_id),
        reason=reason.strip(),
        data={"demonstration_id": demo.id, "before": before},
    )
    session.flush()
    task = session.get(RankingTask, demo.task_id)
    author = session.get(User, demo.labeler_id)
    if task is not None and task.kind == TaskKind.screening and author is not None:
        screening.evaluate_gate(session, settings=settings, user=author)
    return demo


@dataclass(frozen=True)
class LabelerDemonstrations:
    """One labeler's demonstration figures."""

    labeler_id: int
    username: str
    submitted: int
    accepted: int
    rejected: int
    rewritten: int
    acceptance_rate: float | None
    """accepted / (accepted + rejected); None before any review."""
    interval: tuple[float, float] | None
    median_seconds: float | None


def labeler_stats(session: Session) -> list[LabelerDemonstrations]:
    """Per labeler: how many demonstrations they wrote, how the reviews went (with a 95% interval on the acceptance
    rate) and the median time spent; most demonstrations first."""
    rows = session.execute(
        select(
            Demonstration.labeler_id,
            User.username,
            Demonstration.status,
            Demonstration.origin,
            Demonstration.time_spent_ms,
        ).join(User, User.id == Demonstration.labeler_id)
    ).all()
    by_labeler: dict[int, list[Any]] = {}
    for row in rows:
        by_labeler.setdefault(row[0], []).append(row)
    return sorted(
        (_figures(labeler_id, mine) for labeler_id, mine in by_labeler.items()),
        key=lambda s: (-s.submitted, s.username),
    )


def _figures(labeler_id: int, rows: list[Any]) -> LabelerDemonstrations:
    statuses = [r[2] for r in rows]
    accepted = statuses.count(DemonstrationStatus.accepted)
    rejected = statuses.count(DemonstrationStatus.rejected)
    reviewed = accepted + rejected
    interval = None
    if reviewed:
        decisions = np.array([1.0] * accepted + [0.0] * rejected)
        low, high = ratio_interval(decisions, np.ones_like(decisions))
        interval = None if np.isnan(low) else (low, high)
    times = [r[4] for r in rows if r[4] is not None]
    return LabelerDemonstrations(
        labeler_id=labeler_id,
        username=rows[0][1],
        submitted=len(rows),
        accepted=accepted,
        rejected=rejected,
        rewritten=sum(r[3] == DemonstrationOrigin.rewritten for r in rows),
        acceptance_rate=accepted / reviewed if reviewed else None,
        interval=interval,
        median_seconds=float(np.median(times)) / 1000 if times else None,
    )
