"""The SFT export: accepted demonstrations in TRL's `messages` format, with provenance; optionally the best-ranked
output of every ranking whose best bucket holds one output alone (best-of-K fine-tuning, as Llama 2's rejection
sampling did).

Read in keyset batches, each in its own short session (like the comparison export), so a slow consumer holds nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import SessionOpener
from app.errors import InvalidInput
from app.models import Demonstration, DemonstrationStatus, Prompt, Role, Split, User, UserStatus
from app.services import exports
from app.services.exports import assistant, pseudonym

BATCH = 500


@dataclass(frozen=True)
class SftOptions:
    """Which demonstrations (and best-ranked outputs) to export."""

    active_only: bool = True
    """Only demonstrations by labelers whose account is active (researchers' are always kept)."""
    split: Split | None = None
    since: datetime | None = None
    """Only demonstrations written at or after this time."""
    until: datetime | None = None
    """Only demonstrations written before this time."""
    include_best_ranked: bool = False
    """Also the output a ranking placed alone at rank 1 (the comparison export's filters: active labelers only when
    `active_only`)."""
    demonstration_ids: frozenset[int] | None = None
    """Only these demonstrations (a resumed job re-reads exactly what its first attempt chose)."""


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def check(options: SftOptions) -> None:
    """InvalidInput when the options cannot select anything sensible."""
    if options.since is not None and options.until is not None and _utc(options.since) >= _utc(options.until):
        raise InvalidInput("since must be before until")


def _query(options: SftOptions) -> Any:
    stmt = (
        select(Demonstration, Prompt, User)
        .join(Prompt, Prompt.id == Demonstration.prompt_id)
        .join(User, User.id == Demonstration.labeler_id)
        .where(Demonstration.status == DemonstrationStatus.accepted)
        .order_by(Demonstration.id)
    )
    if options.split is not None:
        stmt = stmt.where(Prompt.split == options.split)
    if options.active_only:
        stmt = stmt.where((User.status == UserStatus.active) | User.role.in_((Role.researcher, Role.admin)))
    if options.since is not None:
        stmt = stmt.where(Demonstration.created_at >= _utc(options.since))
    if options.until is not None:
        stmt = stmt.where(Demonstration.created_at < _utc(options.until))
    if options.demonstration_ids is not None:
        stmt = stmt.where(Demonstration.id.in_(sorted(options.demonstration_ids)))
    return stmt


def _record(demo: Demonstration, prompt: Prompt, user: User, settings: Settings) -> dict[str, Any]:
    return {
        "messages": [*prompt.messages, assistant(demo.content)],
        "source": "demonstration",
        "demonstration_id": demo.id,
        "prompt_id": prompt.id,
        "split": prompt.split.value,
        "labeler": pseudonym(user.id, settings=settings),
        "guideline_version": demo.guideline_version,
        "origin": demo.origin.value,
        "source_completion_id": demo.source_completion_id,
        "edited_by_reviewer": demo.original_content is not None,
    }


def demonstration_records(
    sessions: SessionOpener, *, settings: Settings, options: SftOptions
) -> Iterator[dict[str, Any]]:
    """Accepted demonstrations as TRL `messages` records, oldest first."""
    check(options)
    stmt, last = _query(options), 0
    while True:
        with sessions() as session:
            rows = session.execute(stmt.where(Demonstration.id > last).limit(BATCH)).all()
            built = [_record(d, p, u, settings) for d, p, u in rows]
        if not rows:
            return
        last = rows[-1][0].id
        yield from built


def best_ranked_records(
    sessions: SessionOpener, *, settings: Settings, options: SftOptions
) -> Iterator[dict[str, Any]]:
    """The output each ranking placed alone at rank 1, as a `messages` record."""
    ranking_options = exports.ExportOptions(
        format="rankings",
        active_only=options.active_only,
        split=options.split,
        since=options.since,
        until=options.until,
    )
    for group in exports.ranked_groups(sessions, settings=settings, options=ranking_options):
        best = [i for i, rank in enumerate(group.ranks) if rank == 0]
        if len(best) != 1:
            continue
        yield {
            "messages": [*group.messages, assistant(group.completions[best[0]])],
            "source": "best_ranked",
            "ranking_id": group.ranking_id,
            "completion_id": group.completion_ids[best[0]],
            "prompt_id": group.prompt_id,
            "split": group.split.value,
            "labeler": group.labeler,
            "k": len(group.ranks),
        }


def sft_records(sessions: SessionOpener, *, settings: Settings, options: SftOptions) -> Iterator[dict[str, Any]]:
    """Every record of the SFT export: accepted demonstrations, then (if asked) best-ranked outputs."""
    check(options)
    yield from demonstration_records(sessions, settings=settings, options=options)
    if options.include_best_ranked:
        yield from best_ranked_records(sessions, settings=settings, options=options)


def sft_lines(sessions: SessionOpener, *, settings: Settings, options: SftOptions) -> Iterator[str]:
    """The SFT export as JSON lines (options checked now, before the first line is asked for)."""
    check(options)
    return (json.dumps(r, ensure_ascii=False) + "\n" for r in sft_records(sessions, settings=settings, options=options))


def count_accepted(session: Session, *, options: SftOptions) -> int:
    """How many accepted demonstrations the options select."""
    sub = _query(replace(options, include_best_ranked=False)).order_by(None).subquery()
    return session.scalar(select(func.count()).select_from(sub)) or 0
