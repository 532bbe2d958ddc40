"""Streamed comparison exports: one JSON line per strict pair (TRL's conversational preference format: `prompt` the
messages, `chosen`/`rejected` one assistant message each) or per ranking.

Every line carries its provenance: task, ranking, a pseudonymous labeler id (HMAC-SHA256 of the user
id with the secret key, so exports can be joined across time without naming anyone), the labeler's
agreement with researchers, the guideline version and the model that wrote each output.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import SessionOpener
from app.models import (
    Completion,
    Prompt,
    Ranking,
    RankingItem,
    RankingTask,
    Split,
    User,
    UserStatus,
)
from app.services.agreement import aggregates
from app.services.export_options import ExportOptions, as_utc, check_options

BATCH = 500
T = TypeVar("T")


@dataclass(frozen=True)
class RankedGroup:
    """One ranking as a reward model learns from it: every output of its task with the bucket it was put in."""

    task_id: int
    ranking_id: int
    prompt_id: int
    prompt: str
    """The short text form of the conversation (app.services.conversations.text_form)."""
    split: Split
    completion_ids: tuple[int, ...]
    """The task's outputs, in task order."""
    completions: tuple[str, ...]
    ranks: tuple[int, ...]
    """Bucket of each output, 0 = best (ties share a bucket); -1 for an output left out by `exclude_flags`."""
    labeler: str
    """Pseudonymous labeler id (as in the export)."""
    labeler_agreement: float | None
    by_researcher: bool
    model_version_ids: tuple[int | None, ...]
    """The model version that wrote each output."""
    messages: tuple[dict[str, str], ...] = ()
    """The conversation the outputs answer (each output is the next assistant turn)."""


def pseudonym(user_id: int, *, settings: Settings) -> str:
    """A stable pseudonymous labeler id: HMAC-SHA256 of the user id under the secret key (16 hex digits)."""
    key = settings.secret_key.get_secret_value().encode()
    return hmac.new(key, f"labeler:{user_id}".encode(), hashlib.sha256).hexdigest()[:16]


def labeler_agreement(session: Session) -> dict[int, float | None]:
    """Each labeler's pooled agreement with researchers: the dashboards' and the gate's figure."""
    return aggregates.labeler_agreement(session)


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
    if options.model_versions is not None:
        stmt = stmt.where(RankingTask.model_version_id.in_(options.model_versions))
    if options.since is not None:
        stmt = stmt.where(Ranking.created_at >= as_utc(options.since))
    if options.until is not None:
        stmt = stmt.where(Ranking.created_at < as_utc(options.until))
    if options.ranking_ids is not None:
        stmt = stmt.where(Ranking.id <= max(options.ranking_ids, default=0))
    return stmt


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


def assistant(text: str) -> dict[str, str]:
    """A completion as the assistant message it is (TRL's conversational format)."""
    return {"role": "assistant", "content": text}


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
                        "prompt": prompt.messages,
                        "chosen": [assistant(completions[chosen].text)],
                        "rejected": [assistant(completions[rejected].text)],
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
        "prompt": prompt.messages,
        "completions": [[assistant(completions[cid].text)] for cid in order],
        "buckets": [[index[cid] for cid in bucket] for bucket in buckets],
        "models": [completions[cid].model_name for cid in order],
        **base,
    }


def _below(score: float | None, minimum: float | None) -> bool:
    return minimum is not None and (score is None or score < minimum)


def count_rankings(session: Session, *, options: ExportOptions) -> int:
    """How many rankings the export reads (before the agreement and flag filters), for progress bars."""
    return session.scalar(select(func.count()).select_from(_query(options).order_by(None).subquery())) or 0


@dataclass(frozen=True)
class _Kept:
    """A ranking that passed every filter, with what its lines are built from."""

    ranking: Ranking
    task: RankingTask
    prompt: Prompt
    user: User
    agreement: float | None
    buckets: list[list[int]]


def _kept(
    session: Session, rows: Sequence[Any], *, agreement: dict[int, float | None], options: ExportOptions
) -> tuple[list[_Kept], dict[int, Completion]]:
    """The batch's rankings that pass the agreement filter, with their buckets after the flag filter."""
    completions, flags = _details(session, [row[0] for row in rows])
    exclude = set(options.exclude_flags)
    kept = []
    for ranking, task, prompt, user in rows:
        if options.ranking_ids is not None and ranking.id not in options.ranking_ids:
            continue
        score = agreement.get(user.id)
        if ranking.by_researcher or not _below(score, options.min_agreement):
            kept.append(_Kept(ranking, task, prompt, user, score, _kept_buckets(ranking, flags, exclude)))
    return kept, completions


def _batch_records(
    session: Session,
    rows: Sequence[Any],
    *,
    agreement: dict[int, float | None],
    settings: Settings,
    options: ExportOptions,
) -> list[dict[str, Any]]:
    """The lines of one batch of (ranking, task, prompt, user) rows, built while their session is open."""
    kept, completions = _kept(session, rows, agreement=agreement, options=options)
    records: list[dict[str, Any]] = []
    for k in kept:
        base = _provenance(k.ranking, k.task, k.prompt, k.user, k.agreement, settings)
        if options.format == "pairs":
            records.extend(_pair_lines(k.prompt, k.buckets, completions, base))
        elif sum(len(b) for b in k.buckets) >= 2 and len(k.buckets) >= 2:
            records.append(_ranking_line(k.prompt, k.buckets, completions, base))
    return records


def _batch_groups(
    session: Session,
    rows: Sequence[Any],
    *,
    agreement: dict[int, float | None],
    settings: Settings,
    options: ExportOptions,
) -> list[RankedGroup]:
    """The reward-model view of one batch: rankings with at least two buckets left after the filters."""
    kept, completions = _kept(session, rows, agreement=agreement, options=options)
    groups = []
    for k in kept:
        if len(k.buckets) < 2:
            continue
        ids = tuple(sorted({cid for bucket in k.ranking.buckets for cid in bucket}))
        bucket_of = {cid: b for b, bucket in enumerate(k.buckets) for cid in bucket}
        groups.append(
            RankedGroup(
                task_id=k.task.id,
                ranking_id=k.ranking.id,
                prompt_id=k.prompt.id,
                prompt=k.prompt.text,
                split=k.prompt.split,
                completion_ids=ids,
                completions=tuple(completions[cid].text for cid in ids),
                ranks=tuple(bucket_of.get(cid, -1) for cid in ids),
                labeler=pseudonym(k.user.id, settings=settings),
                labeler_agreement=k.agreement,
                by_researcher=k.ranking.by_researcher,
                model_version_ids=tuple(completions[cid].model_version_id for cid in ids),
                messages=tuple(k.prompt.messages),
            )
        )
    return groups


def _read_batches(
    sessions: SessionOpener,
    build: Callable[..., list[T]],
    *,
    settings: Settings,
    options: ExportOptions,
    on_batch: Callable[[int], None] | None,
) -> Iterator[T]:
    """Keyset batches of rankings, each read and built in its own short transaction, closed before it is handed
    out: a consumer that is slow, stops half-way or is never resumed (a client that went away from a streamed
    download) holds no connection, no snapshot and, on SQLite, no write lock."""
    check_options(options)
    with sessions() as session:
        agreement = labeler_agreement(session)
    stmt, last = _query(options), 0
    while True:
        with sessions() as session:
            rows = session.execute(stmt.where(Ranking.id > last).limit(BATCH)).all()
            built = build(session, rows, agreement=agreement, settings=settings, options=options)
        if not rows:
            return
        last = rows[-1][0].id
        yield from built
        if on_batch is not None:
            on_batch(len(rows))


def export_records(
    sessions: SessionOpener,
    *,
    settings: Settings,
    options: ExportOptions,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """The export as dicts, in batches of rankings; `on_batch(n)` after each batch of n rankings."""
    return _read_batches(sessions, _batch_records, settings=settings, options=options, on_batch=on_batch)


def ranked_groups(
    sessions: SessionOpener,
    *,
    settings: Settings,
    options: ExportOptions,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[RankedGroup]:
    """The rankings a reward model trains on, kept by exactly the export's filters (`format` is ignored)."""
    return _read_batches(sessions, _batch_groups, settings=settings, options=options, on_batch=on_batch)


def export_lines(
    sessions: SessionOpener,
    *,
    settings: Settings,
    options: ExportOptions,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[str]:
    """The export as JSON lines (options checked now, before the first line is asked for)."""
    check_options(options)
    records = export_records(sessions, settings=settings, options=options, on_batch=on_batch)
    return (json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def single_session(session: Session) -> SessionOpener:
    """A SessionOpener over one caller-owned session (tests, a caller that already holds a transaction)."""
    return lambda: nullcontext(session)
