"""Table loading: stored rankings as numpy columns (``RankingTable``).

Loading avoids ORM objects and per-ranking Python work: one Core statement for the rankings, one for the
tasks' completions, bucket JSON parsed as one byte array, ranks scattered into an (N, K_max) array.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import compress
from typing import Any

import numpy as np
from sqlalchemy import String, Text, cast, select, type_coerce
from sqlalchemy.orm import Session

from app.models import Assignment, Ranking, RankingTask, TaskCompletion, TaskKind

_BUCKET_CHARS = np.zeros(256, dtype=bool)
_BUCKET_CHARS[np.frombuffer(b"[], \t\n\r0123456789", dtype=np.uint8)] = True


@dataclass
class RankingTable:
    """Usable rankings as columns, in (task, created_at, id) order; ``ranks`` rows are padded with -1 past k."""

    id: np.ndarray  # (N,)
    task_id: np.ndarray  # (N,)
    user_id: np.ndarray  # (N,)
    by_researcher: np.ndarray  # (N,) bool
    k: np.ndarray  # (N,) completions in the ranking's task
    ranks: np.ndarray  # (N, K_max) bucket index per completion, aligned to item_ids[task_id]
    first_shown_won: np.ndarray  # (N,) 1 won, 0 lost, -1 unknown (no display order, or not one of the task's)
    kind: list[TaskKind]
    created_at: list[datetime]
    time_spent_ms: list[int | None]
    item_ids: dict[int, list[int]]

    def take(self, rows: np.ndarray) -> RankingTable:
        """The rankings at ``rows`` (positions, in order) as a table of their own."""
        picked = rows.tolist()
        return RankingTable(
            id=self.id[rows],
            task_id=self.task_id[rows],
            user_id=self.user_id[rows],
            by_researcher=self.by_researcher[rows],
            k=self.k[rows],
            ranks=self.ranks[rows],
            first_shown_won=self.first_shown_won[rows],
            kind=[self.kind[n] for n in picked],
            created_at=[self.created_at[n] for n in picked],
            time_spent_ms=[self.time_spent_ms[n] for n in picked],
            item_ids=self.item_ids,
        )


def split_by(values: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(value, positions holding it, in order) for each distinct value."""
    order = np.argsort(values, kind="stable")
    distinct, starts = np.unique(values[order], return_index=True)
    if not distinct.size:
        return iter(())
    return zip(distinct.tolist(), np.split(order, starts[1:]), strict=True)


def flatten_buckets(buckets: Sequence[Sequence[Sequence[int]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rankings given as buckets of item ids -> (ranking index, bucket index, item id), one entry per item."""
    given = [
        (i, b, c if isinstance(c, int | float) and float(c).is_integer() else -1)  # -1: never a stored id
        for i, ranking in enumerate(buckets)
        for b, bucket in enumerate(ranking)
        for c in bucket
    ]
    row, bucket, item = np.array(given, dtype=np.int64).reshape(-1, 3).T
    return row, bucket, item


def parse_bucket_texts(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``flatten_buckets`` of JSON texts (each a list of lists of non-negative ints), parsed as one byte array.

    Anything else (nulls, strings, deeper nesting) falls back to ``json.loads``.
    """
    c = np.frombuffer("".join(texts).encode(), dtype=np.uint8)  # (C,)
    depth = np.cumsum((c == ord("[")).astype(np.int64) - (c == ord("]")))  # after each character
    starts = (c == ord("[")) & (depth == 1)
    digit = (c >= ord("0")) & (c <= ord("9"))
    if not (_BUCKET_CHARS[c].all() and depth.min(initial=0) >= 0 and depth.max(initial=0) <= 2) or (
        starts.sum() != len(texts) or (digit & (depth != 2)).any()
    ):
        return flatten_buckets([json.loads(t) for t in texts])
    row = np.cumsum(starts) - 1  # (C,) ranking of each character
    opened = np.cumsum((c == ord("[")) & (depth == 2))  # buckets opened so far, over all rankings
    bucket = opened - opened[starts][row] - 1  # (C,) bucket of each character within its ranking
    first = digit & ~np.r_[False, digit[:-1]]
    at = np.flatnonzero(digit)  # (D,) digit positions
    number = (np.cumsum(first) - 1)[at]  # (D,) which number each digit belongs to
    power = np.flatnonzero(digit & ~np.r_[digit[1:], False])[number] - at  # (D,) digits after it in its number
    item = np.zeros(int(first.sum()), dtype=np.int64)
    np.add.at(item, number, (c[at] - ord("0")).astype(np.int64) * 10**power)
    return row[first], bucket[first], item


def bucket_ranks(
    row: np.ndarray, bucket: np.ndarray, item: np.ndarray, item_ids: Sequence[Sequence[int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Rank vectors of N rankings given flat (row, bucket, item): ``(ranks (N, K_max) padded with -1, valid)``.

    Row n equals ``metrics.buckets_to_ranks(buckets[n], item_ids[n])`` where that succeeds; where it would
    raise (an unknown, repeated or missing item) the row is all -1 and ``valid[n]`` is False.
    """
    n = len(item_ids)
    k = np.array([len(items) for items in item_ids], dtype=np.int64)  # (N,)
    width = max(int(k.max(initial=0)), 1)
    item_row = np.repeat(np.arange(n), k)  # (I,)
    item_cid = np.fromiter((c for items in item_ids for c in items), dtype=np.int64, count=int(k.sum()))
    item_pos = np.arange(item_cid.size) - np.repeat(np.cumsum(k) - k, k)
    # one integer key per (row, item id), so every row looks its items up among its own task's
    lo = min(item_cid.min(initial=0), item.min(initial=0))
    span = max(item_cid.max(initial=0), item.max(initial=0)) - lo + 1
    item_key, key = item_row * span + item_cid - lo, row * span + item - lo
    order = np.argsort(item_key, kind="stable")
    item_key, item_row, item_pos = item_key[order], item_row[order], item_pos[order]
    at = np.minimum(np.searchsorted(item_key, key), max(item_key.size - 1, 0))
    found = item_key[at] == key if item_key.size else np.zeros(key.size, dtype=bool)
    cell = (row[found], item_pos[at[found]])
    hits = np.zeros((n, width), dtype=np.int64)
    np.add.at(hits, cell, 1)
    valid = (np.bincount(row, minlength=n) == k) & ((hits == 1).sum(axis=1) == k)
    valid[row[~found]] = False
    valid[item_row[1:][np.diff(item_key) == 0]] = False  # a task listing one item twice
    ranks = np.full((n, width), -1, dtype=np.int64)
    ranks[cell] = bucket[found]
    ranks[~valid] = -1
    return ranks[:, : int(k.max(initial=0))], valid


def _usable(task_ids: list[int] | None, kinds: Sequence[TaskKind] | None) -> tuple[Any, list[Any]]:
    """The rankings-with-tasks join and the filter for usable rankings of the asked tasks / kinds."""
    r, t = Ranking.__table__.c, RankingTask.__table__.c
    where = [r.not_rankable.is_(False)]
    if task_ids is not None:
        where.append(r.task_id.in_(task_ids))
    if kinds is not None:
        where.append(t.kind.in_(list(kinds)))
    return Ranking.__table__.join(RankingTask.__table__, t.id == r.task_id), where


def _utc(value: datetime | str) -> datetime:
    """What ``UTCDateTime`` returns, from the raw value: SQLite gives ISO text, PostgreSQL a datetime."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _ranking_rows(session: Session, *, task_ids: list[int] | None, kinds: Sequence[TaskKind] | None) -> list[Any]:
    """One Core statement (no ORM objects); JSON and timestamps come back raw, to be converted in bulk."""
    r, a = Ranking.__table__.c, Assignment.__table__.c
    joined, where = _usable(task_ids, kinds)
    query = (
        select(r.id, r.task_id, r.labeler_id, r.by_researcher, cast(r.buckets, Text), r.time_spent_ms)
        .add_columns(type_coerce(r.created_at, String), RankingTask.__table__.c.kind, cast(a.display_order, Text))
        .select_from(joined.outerjoin(Assignment.__table__, a.id == r.assignment_id))
        .where(*where)
        .order_by(r.task_id, r.created_at, r.id)
    )
    return list(session.execute(query).all())


def _task_items(
    session: Session, *, task_ids: list[int] | None, kinds: Sequence[TaskKind] | None
) -> dict[int, list[int]]:
    """Completion ids, in task order, of every task with a usable ranking (one statement)."""
    c = TaskCompletion.__table__.c
    joined, where = _usable(task_ids, kinds)
    ranked = select(Ranking.__table__.c.task_id).select_from(joined).where(*where)
    rows = session.execute(
        select(c.task_id, c.completion_id).where(c.task_id.in_(ranked)).order_by(c.task_id, c.position)
    ).all()
    items: dict[int, list[int]] = defaultdict(list)
    for task_id, completion_id in rows:
        items[task_id].append(completion_id)
    return items


def _first_shown_won(display: list[str | None], items: list[list[int]], ranks: np.ndarray) -> np.ndarray:
    """Per ranking: 1 if the first-shown completion landed in the best bucket, 0 if not, -1 if unknown."""
    won = np.full(len(display), -1, dtype=np.int8)
    for n, text in enumerate(display):
        order = json.loads(text) if text is not None else None
        if order and order[0] in items[n]:
            rank = ranks[n, : len(items[n])]
            won[n] = rank[items[n].index(order[0])] == rank.min()
    return won


def load_rankings(
    session: Session, *, task_ids: Iterable[int] | None = None, kinds: Sequence[TaskKind] | None = None
) -> RankingTable:
    """Usable (rankable) rankings whose buckets match their task's completions, as columns."""
    ids = None if task_ids is None else list(task_ids)
    rows = _ranking_rows(session, task_ids=ids, kinds=kinds)
    task_items = _task_items(session, task_ids=ids, kinds=kinds)
    columns = list(zip(*rows, strict=True)) or [()] * 9  # one tuple per selected column
    ranks, valid = bucket_ranks(*parse_bucket_texts(columns[4]), [task_items[t] for t in columns[1]])
    keep = valid.tolist()
    ranking_id, task_id, user_id, by_researcher = (np.array(c, dtype=np.int64)[valid] for c in columns[:4])
    items = [task_items[t] for t in task_id.tolist()]
    ranks = ranks[valid]
    return RankingTable(
        id=ranking_id,
        task_id=task_id,
        user_id=user_id,
        by_researcher=by_researcher.astype(bool),
        k=np.array([len(i) for i in items], dtype=np.int64),
        ranks=ranks,
        first_shown_won=_first_shown_won(list(compress(columns[8], keep)), items, ranks),
        kind=list(compress(columns[7], keep)),
        created_at=[_utc(c) for c in compress(columns[6], keep)],
        time_spent_ms=list(compress(columns[5], keep)),
        item_ids=task_items,
    )
