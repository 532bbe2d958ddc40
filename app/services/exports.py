"""Streamed comparison exports: one JSON line per strict pair (TRL preference format) or per ranking.

Every line carries its provenance: task, ranking, a pseudonymous labeler id (HMAC-SHA256 of the user
id with the secret key, so exports can be joined across time without naming anyone), the labeler's
agreement with researchers, the guideline version and the model that wrote each output.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import InvalidInput
from app.models import (
    FLAGS,
    Completion,
    Prompt,
    Ranking,
    RankingItem,
    RankingTask,
    Split,
    User,
    UserStatus,
)
from app.schemas.jobs import ExportParams
from app.services import agreement as ag

BATCH = 500


@dataclass(frozen=True)
class ExportOptions:
    """What to export and which rankings to keep."""

    format: Literal["pairs", "rankings"] = "pairs"
    active_only: bool = False
    """Only rankings by labelers whose account is active (researchers' rankings are always kept)."""
    min_agreement: float | None = None
    """Only labelers whose agreement with researchers is at least this (researchers are always kept)."""
    split: Split | None = None
    exclude_flags: tuple[str, ...] = ()
    """Leave out outputs that the ranking flagged with any of these flags."""


def pseudonym(user_id: int, *, settings: Settings) -> str:
    """A stable pseudonymous labeler id: HMAC-SHA256 of the user id under the secret key (16 hex digits)."""
    key = settings.secret_key.get_secret_value().encode()
    return hmac.new(key, f"labeler:{user_id}".encode(), hashlib.sha256).hexdigest()[:16]


def _check(options: ExportOptions) -> None:
    unknown = sorted(set(options.exclude_flags) - set(FLAGS))
    if unknown:
        raise InvalidInput(f"unknown flags {unknown}; allowed: {', '.join(FLAGS)}")
    if options.format not in ("pairs", "rankings"):
        raise InvalidInput("format must be 'pairs' or 'rankings'")


def labeler_agreement(session: Session) -> dict[int, float | None]:
    """Each labeler's pooled agreement with researchers."""
    pairs = ag.ranking_pairs(ag.load_task_rankings(session).values())
    return {uid: p.value for uid, p in ag.pooled_by_user(ag.researcher_units(pairs)).items()}


def _query(options: ExportOptions) -> Select[Ranking, RankingTask, Prompt, User]:
    stmt = (
        select(Ranking, RankingTask, Prompt, User)
        .join(RankingTask, RankingTask.id == Ranking.task_id)
        .join(Prompt, Prompt.id == RankingTask.prompt_id)
        .join(User, User.id == Ranking.labeler_id)
        .where(Ranking.not_rankable.is_(False))
        .order_by(Ranking.id)
    )
    if options.split is not None:
        stmt = stmt.where(Prompt.split == options.split)
    if options.active_only:
        stmt = stmt.where((User.status == UserStatus.active) | Ranking.by_researcher.is_(True))
    return stmt


def _batches(session: Session, stmt: Select[Ranking, RankingTask, Prompt, User]) -> Iterator[Sequence[Any]]:
    """Keyset pages of rows, so a long export never holds every ranking at once."""
    last = 0
    while True:
        rows = session.execute(stmt.where(Ranking.id > last).limit(BATCH)).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0].id


def _details(session: Session, rankings: Sequence[Ranking]) -> tuple[dict[int, Completion], dict[tuple[int, int], set]]:
    ids = [r.id for r in rankings]
    flags = {
        (rid, cid): set(f or [])
        for rid, cid, f in session.execute(
            select(RankingItem.ranking_id, RankingItem.completion_id, RankingItem.flags).where(
                RankingItem.ranking_id.in_(ids)
            )
        )
    }
    completion_ids = {cid for r in rankings for bucket in r.buckets for cid in bucket}
    completions = {c.id: c for c in session.scalars(select(Completion).where(Completion.id.in_(completion_ids)))}
    return completions, flags


def _provenance(
    ranking: Ranking, task: RankingTask, prompt: Prompt, user: User, agreement: float | None, settings: Settings
) -> dict[str, Any]:
    return {
        "task_id": task.id,
        "task_kind": task.kind.value,
        "ranking_id": ranking.id,
        "labeler": pseudonym(user.id, settings=settings),
        "by_researcher": ranking.by_researcher,
        "labeler_agreement": agreement,
        "guideline_version": ranking.guideline_version,
        "model_version_id": task.model_version_id,
        "split": prompt.split.value,
    }


def _kept_buckets(ranking: Ranking, flags: dict[tuple[int, int], set], exclude: set[str]) -> list[list[int]]:
    buckets = [
        [cid for cid in bucket if not (flags.get((ranking.id, cid), set()) & exclude)] for bucket in ranking.buckets
    ]
    return [b for b in buckets if b]


def _pair_lines(
    prompt: Prompt, buckets: list[list[int]], completions: dict[int, Completion], base: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    for better in range(len(buckets)):
        for worse in range(better + 1, len(buckets)):
            for chosen in buckets[better]:
                for rejected in buckets[worse]:
                    yield {
                        "prompt": prompt.text,
                        "chosen": completions[chosen].text,
                        "rejected": completions[rejected].text,
                        **base,
                        "chosen_rank": better,
                        "rejected_rank": worse,
                        "chosen_model": completions[chosen].model_name,
                        "rejected_model": completions[rejected].model_name,
                    }


def _ranking_line(
    prompt: Prompt, buckets: list[list[int]], completions: dict[int, Completion], base: dict[str, Any]
) -> dict[str, Any]:
    order = [cid for bucket in buckets for cid in bucket]
    index = {cid: i for i, cid in enumerate(order)}
    return {
        "prompt": prompt.text,
        "completions": [completions[cid].text for cid in order],
        "buckets": [[index[cid] for cid in bucket] for bucket in buckets],
        "models": [completions[cid].model_name for cid in order],
        **base,
    }


def _below(score: float | None, minimum: float | None) -> bool:
    return minimum is not None and (score is None or score < minimum)


def count_rankings(session: Session, *, options: ExportOptions) -> int:
    """How many rankings the export reads (before the agreement and flag filters), for progress bars."""
    return session.scalar(select(func.count()).select_from(_query(options).order_by(None).subquery())) or 0


def export_records(
    session: Session,
    *,
    settings: Settings,
    options: ExportOptions,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """The export as dicts, streamed in batches of rankings; `on_batch(n)` after each batch of n rankings."""
    _check(options)
    agreement = labeler_agreement(session)
    exclude = set(options.exclude_flags)
    for rows in _batches(session, _query(options)):
        completions, flags = _details(session, [row[0] for row in rows])
        for ranking, task, prompt, user in rows:
            score = agreement.get(user.id)
            if not ranking.by_researcher and _below(score, options.min_agreement):
                continue
            base = _provenance(ranking, task, prompt, user, score, settings)
            buckets = _kept_buckets(ranking, flags, exclude)
            if options.format == "pairs":
                yield from _pair_lines(prompt, buckets, completions, base)
            elif sum(len(b) for b in buckets) >= 2 and len(buckets) >= 2:
                yield _ranking_line(prompt, buckets, completions, base)
        if on_batch is not None:
            on_batch(len(rows))


def export_lines(
    session: Session,
    *,
    settings: Settings,
    options: ExportOptions,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[str]:
    """The export as JSON lines (checked before the first line is produced)."""
    _check(options)
    records = export_records(session, settings=settings, options=options, on_batch=on_batch)
    return (json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def options_from_params(params: ExportParams) -> ExportOptions:
    """ExportOptions from an export job's parsed params."""
    return ExportOptions(
        format=params.format,
        active_only=params.active_only,
        min_agreement=params.min_agreement,
        split=params.split,
        exclude_flags=tuple(params.exclude_flags),
    )


def job_file(data_dir: Path, *, job_id: int, fmt: str) -> Path:
    """Where the export job `job_id` writes its JSON lines."""
    return Path(data_dir) / "exports" / f"job-{job_id}-{fmt}.jsonl"
