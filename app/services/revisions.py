"""A labeler's recent rankings, and revising one within a short window (each revision kept in the audit log).

A revision changes the stored ranking in place, so every metric reads the labeler's latest judgement; what it
replaced goes to the audit log as a `ranking.revise` entry (the full previous ranking), so nothing is lost.
Screening rankings are final: the screening gate has already scored them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.errors import Conflict, Forbidden, NotFound
from app.models import Assignment, Prompt, Ranking, RankingItem, RankingTask, TaskKind, User, utcnow
from app.services import audit
from app.services.rankings import RankingSubmission, _lock_task, check_submission


@dataclass(frozen=True)
class RecentRanking:
    """One of the labeler's own rankings as their history lists it."""

    ranking: Ranking
    prompt_text: str
    revisable_until: datetime | None
    """None when the window has passed (or the ranking is a screening one)."""


def revisable_until(ranking: Ranking, kind: TaskKind, now: datetime, window: timedelta) -> datetime | None:
    """The end of the ranking's revision window (`window` after it was sent), or None when it cannot be revised now."""
    end = ranking.created_at + window
    return end if kind != TaskKind.screening and end > now else None


def recent_rankings(
    session: Session, *, labeler: User, window: timedelta, limit: int = 10, now: datetime | None = None
) -> list[RecentRanking]:
    """The labeler's newest rankings, newest first."""
    now = now or utcnow()
    rows = session.execute(
        select(Ranking, Prompt.text, RankingTask.kind)
        .join(RankingTask, RankingTask.id == Ranking.task_id)
        .join(Prompt, Prompt.id == RankingTask.prompt_id)
        .where(Ranking.labeler_id == labeler.id)
        .order_by(Ranking.created_at.desc(), Ranking.id.desc())
        .limit(limit)
    ).all()
    return [RecentRanking(r, text, revisable_until(r, kind, now, window)) for r, text, kind in rows]


def own_ranking(session: Session, *, labeler: User, ranking_id: int) -> Ranking:
    """The caller's ranking with its items (404 if missing, 403 if someone else's)."""
    ranking = session.scalar(select(Ranking).where(Ranking.id == ranking_id).options(selectinload(Ranking.items)))
    if ranking is None:
        raise NotFound(f"no ranking with id {ranking_id}")
    if ranking.labeler_id != labeler.id:
        raise Forbidden(f"ranking {ranking_id} belongs to another labeler")
    return ranking


def display_order(session: Session, *, ranking: Ranking) -> list[int]:
    """The completion ids in the order the labeler saw them when ranking."""
    assignment = session.get(Assignment, ranking.assignment_id) if ranking.assignment_id else None
    return list(assignment.display_order) if assignment else [i.completion_id for i in ranking.items]


def display_orders(session: Session, *, rankings: list[Ranking]) -> dict[int, list[int]]:
    """display_order for many rankings at once (one query): ranking id -> completion ids as its labeler saw them."""
    ids = [r.assignment_id for r in rankings if r.assignment_id]
    shown: dict[int, list[int]] = dict(
        session.execute(select(Assignment.id, Assignment.display_order).where(Assignment.id.in_(ids))).all()
    )
    return {
        r.id: list(shown[r.assignment_id]) if r.assignment_id in shown else [i.completion_id for i in r.items]
        for r in rankings
    }


def revise_ranking(
    session: Session,
    *,
    labeler: User,
    ranking_id: int,
    submission: RankingSubmission,
    window: timedelta,
    now: datetime | None = None,
) -> Ranking:
    """Replace the caller's ranking with a corrected one, if its window is still open; the old one is audited."""
    now = now or utcnow()
    ranking = own_ranking(session, labeler=labeler, ranking_id=ranking_id)
    task, task_ids, _ = _lock_task(session, task_id=ranking.task_id)
    if revisable_until(ranking, task.kind, now, window) is None:
        if task.kind == TaskKind.screening:
            raise Conflict("screening rankings are final")
        if not window:
            raise Conflict("rankings cannot be revised on this server (RANKLAB_REVISION_MINUTES is 0)")
        minutes = int(window.total_seconds() // 60)
        raise Conflict(f"ranking {ranking_id} can no longer be revised ({minutes} minutes after it was submitted)")
    check_submission(submission, task_ids)
    before = {"ranking_id": ranking.id, "before": _snapshot(ranking)}
    audit.record(session, actor=labeler, action="ranking.revise", data=before)
    rank_of = {cid: i for i, bucket in enumerate(submission.ranking) for cid in bucket}
    ranking.buckets = [list(b) for b in submission.ranking]
    ranking.not_rankable = submission.not_rankable
    ranking.note = submission.note.strip()
    by_id = {item.completion_id: item for item in ranking.items}
    for cid in task_ids:
        item = by_id.get(cid) or RankingItem(completion_id=cid)
        item.rank, item.rating = rank_of.get(cid), submission.ratings.get(cid)
        item.flags = sorted(set(submission.flags.get(cid, [])))
        if cid not in by_id:
            ranking.items.append(item)
    session.flush()
    return ranking


def _snapshot(ranking: Ranking) -> dict[str, object]:
    return {
        "buckets": ranking.buckets,
        "not_rankable": ranking.not_rankable,
        "note": ranking.note,
        "items": {str(i.completion_id): [i.rank, i.rating, list(i.flags)] for i in ranking.items},
        "created_at": ranking.created_at.isoformat(),
    }
