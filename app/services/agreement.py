"""Agreement over stored rankings: labelers against researchers, labelers against each other.

Every figure is built from *ranking pairs*: two rankings of the same task by different people,
compared with ``app.metrics.pairwise_agreement_batch`` on rank vectors aligned to the task's
completion ids. A labeler's agreement with researchers pools, over their rankings of tasks that a
researcher also ranked, the item pairs both ordered strictly and the share ordered the same way
(``sum agree / sum comparable``); each of the labeler's rankings is one bootstrap unit.

The dashboards read the same rankings as numpy columns (``app.services.agreement_table``); the record
and pair objects here serve the views that show individual rankings.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import metrics
from app.models import FLAGS, Ranking, RankingItem, TaskKind
from app.services import agreement_table

GOLD_KINDS = (TaskKind.gold, TaskKind.screening)


@dataclass
class RankingRecord:
    """One usable ranking as a rank vector over its task's completions."""

    id: int
    task_id: int
    user_id: int
    by_researcher: bool
    kind: TaskKind
    created_at: datetime
    ranks: np.ndarray  # (K,) bucket index per completion, aligned to TaskRankings.item_ids
    time_spent_ms: int | None
    first_shown_won: bool | None

    @property
    def day(self) -> date:
        return self.created_at.date()


@dataclass
class TaskRankings:
    """All usable rankings of one task."""

    task_id: int
    kind: TaskKind
    item_ids: list[int]
    rankings: list[RankingRecord] = field(default_factory=list)

    @property
    def labeler_rankings(self) -> list[RankingRecord]:
        return [r for r in self.rankings if not r.by_researcher]

    @property
    def researcher_rankings(self) -> list[RankingRecord]:
        return [r for r in self.rankings if r.by_researcher]


@dataclass(frozen=True)
class RankingPair:
    """Two rankings of one task by different people, with their pair counts."""

    a: RankingRecord
    b: RankingRecord
    agree: int
    comparable: int


def load_task_rankings(
    session: Session,
    *,
    task_ids: Iterable[int] | None = None,
    kinds: Sequence[TaskKind] | None = None,
) -> dict[int, TaskRankings]:
    """Usable (rankable) rankings grouped by task, optionally for some tasks or task kinds only."""
    table = agreement_table.load_rankings(session, task_ids=task_ids, kinds=kinds)
    won = [None if w < 0 else bool(w) for w in table.first_shown_won.tolist()]
    tasks: dict[int, TaskRankings] = {}
    columns = (table.id, table.task_id, table.user_id, table.by_researcher, table.k)
    for n, (rid, tid, uid, by_researcher, k) in enumerate(zip(*(c.tolist() for c in columns), strict=True)):
        task = tasks.get(tid) or tasks.setdefault(tid, TaskRankings(tid, table.kind[n], table.item_ids[tid]))
        task.rankings.append(
            RankingRecord(
                id=rid,
                task_id=tid,
                user_id=uid,
                by_researcher=by_researcher,
                kind=table.kind[n],
                created_at=table.created_at[n],
                ranks=table.ranks[n, :k],
                time_spent_ms=table.time_spent_ms[n],
                first_shown_won=won[n],
            )
        )
    return tasks


def ranking_pairs(tasks: Iterable[TaskRankings]) -> list[RankingPair]:
    """Every pair of rankings of the same task by different people, with agree / comparable counts."""
    tasks = list(tasks)
    records = [r for task in tasks for r in task.rankings]
    k = np.array([len(r.ranks) for r in records], dtype=np.int64)
    ranks = np.full((len(records), int(k.max(initial=0))), -1, dtype=np.int64)
    for n, r in enumerate(records):
        ranks[n, : len(r.ranks)] = r.ranks
    group = np.repeat(np.arange(len(tasks)), [len(task.rankings) for task in tasks])  # (N,) task index
    i, j = agreement_table.pair_indexes(group, np.array([r.user_id for r in records], dtype=np.int64))
    agree, comparable = agreement_table.pair_counts(ranks, k, i, j)
    return [
        RankingPair(records[a], records[b], n, d)
        for a, b, n, d in zip(i.tolist(), j.tolist(), agree.tolist(), comparable.tolist(), strict=True)
    ]


@dataclass
class Pooled:
    """A pooled pairwise agreement with its n (units) and bootstrap 95% interval."""

    value: float | None
    n: int
    ci_low: float | None
    ci_high: float | None
    pairs: int = 0


def _finite(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def pooled(agree: Sequence[int] | np.ndarray, comparable: Sequence[int] | np.ndarray, *, seed: int = 0) -> Pooled:
    """sum(agree) / sum(comparable) over units, with a percentile bootstrap interval over units."""
    total = int(np.sum(comparable)) if len(comparable) else 0
    if total == 0:
        return Pooled(None, len(agree), None, None, 0)
    low, high = metrics.bootstrap_ratio_ci(agree, comparable, seed=seed)
    return Pooled(float(np.sum(agree)) / total, len(agree), _finite(low), _finite(high), total)


def researcher_units(pairs: Iterable[RankingPair]) -> dict[int, tuple[RankingRecord, int, int]]:
    """Per non-researcher ranking: (ranking, agree, comparable) summed over the researcher rankings of its task."""
    units: dict[int, tuple[RankingRecord, int, int]] = {}
    for p in pairs:
        for mine, other in ((p.a, p.b), (p.b, p.a)):
            if other.by_researcher and not mine.by_researcher:
                _, n, d = units.get(mine.id, (mine, 0, 0))
                units[mine.id] = (mine, n + p.agree, d + p.comparable)
    return units


def peer_units(pairs: Iterable[RankingPair]) -> dict[int, tuple[RankingRecord, int, int]]:
    """Per non-researcher ranking: (ranking, agree, comparable) summed over other labelers' rankings of its task."""
    units: dict[int, tuple[RankingRecord, int, int]] = {}
    for p in pairs:
        if p.a.by_researcher or p.b.by_researcher:
            continue
        for mine in (p.a, p.b):
            _, n, d = units.get(mine.id, (mine, 0, 0))
            units[mine.id] = (mine, n + p.agree, d + p.comparable)
    return units


def pooled_by_user(units: dict[int, tuple[RankingRecord, int, int]]) -> dict[int, Pooled]:
    """Pool units per user."""
    grouped: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for record, n, d in units.values():
        grouped[record.user_id].append((n, d))
    return {uid: pooled([n for n, _ in v], [d for _, d in v]) for uid, v in grouped.items()}


def split_by(values: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(value, positions holding it, in order) for each distinct value."""
    order = np.argsort(values, kind="stable")
    distinct, starts = np.unique(values[order], return_index=True)
    if not distinct.size:
        return iter(())
    return zip(distinct.tolist(), np.split(order, starts[1:]), strict=True)


def pooled_units_by_user(
    table: agreement_table.RankingTable, units: agreement_table.Units, *, user_ids: set[int] | None = None
) -> dict[int, Pooled]:
    """``pooled_by_user`` over columnar units, for every user or only ``user_ids`` (each bootstrap costs)."""
    return {
        uid: pooled(units.agree[at], units.comparable[at])
        for uid, at in split_by(table.user_id[units.row])
        if user_ids is None or uid in user_ids
    }


def labeler_habits(table: agreement_table.RankingTable) -> dict[int, tuple[float | None, metrics.PositionBias]]:
    """Per user, over their non-researcher rankings: (median seconds per ranking, position bias)."""
    rows = np.flatnonzero(~table.by_researcher)
    habits = {}
    for uid, at in split_by(table.user_id[rows]):
        mine = rows[at]
        times = [table.time_spent_ms[n] / 1000 for n in mine.tolist() if table.time_spent_ms[n] is not None]
        won = table.first_shown_won[mine]
        bias = metrics.position_bias((won[won >= 0] == 1).tolist(), table.k[mine][won >= 0].tolist())
        habits[uid] = (float(np.median(times)) if times else None, bias)
    return habits


def inter_labeler_pairs(pairs: Iterable[RankingPair]) -> list[RankingPair]:
    """Pairs where neither ranking is a researcher's."""
    return [p for p in pairs if not p.a.by_researcher and not p.b.by_researcher]


def task_alpha(task: TaskRankings) -> float | None:
    """Krippendorff ordinal alpha of the labelers' rankings of one task (None under two labelers)."""
    rankings = task.labeler_rankings
    if len({r.user_id for r in rankings}) < 2:
        return None
    return _finite(metrics.ranking_alpha(np.stack([r.ranks for r in rankings])))


def table_task_alphas(table: agreement_table.RankingTable) -> dict[int, float | None]:
    """Krippendorff ordinal alpha of the labelers' rankings of each task (researchers left out), batched;
    None for a task with fewer than two labelers (as ``task_alpha``)."""
    labeler = ~table.by_researcher
    task_ids, group = np.unique(table.task_id[labeler], return_inverse=True)
    if not task_ids.size:
        return {}
    alphas = metrics.ranking_alpha_grouped(table.ranks[labeler], group, task_ids.size)
    # distinct labelers per task: alpha needs two (one labeler's rankings never pair with each other)
    pairs = np.unique(np.stack([group, table.user_id[labeler]]), axis=1)
    labelers = np.bincount(pairs[0], minlength=task_ids.size)
    return {int(t): (_finite(float(a)) if n >= 2 else None) for t, a, n in zip(task_ids, alphas, labelers, strict=True)}


@dataclass
class FlagStats:
    """A labeler's flags against researchers' flags on the same completions."""

    labels: dict[str, tuple[list[bool], list[bool]]] = field(default_factory=dict)
    same_set: int = 0
    total: int = 0

    @property
    def agreement(self) -> float | None:
        """Share of completions where the labeler's set of flags equals the researcher's."""
        return self.same_set / self.total if self.total else None

    def kappa(self) -> dict[str, float | None]:
        """Cohen kappa per flag (None when no completion was compared)."""
        return {
            flag: _finite(metrics.cohen_kappa(*self.labels[flag])) if flag in self.labels else None for flag in FLAGS
        }

    def percent(self) -> dict[str, float | None]:
        """Percent agreement per flag: share of compared completions where both set it or both did not."""
        return {
            flag: _finite(metrics.percent_agreement(*self.labels[flag])) if flag in self.labels else None
            for flag in FLAGS
        }


def flag_stats(session: Session, *, pairs: Sequence[RankingPair]) -> dict[int, FlagStats]:
    """Per labeler: flags compared item by item with each researcher ranking of the same task."""
    compared = []
    for p in pairs:
        if p.a.by_researcher != p.b.by_researcher:
            mine, gold = (p.b, p.a) if p.a.by_researcher else (p.a, p.b)
            compared.append((mine.user_id, mine.id, gold.id))
    return compared_flag_stats(session, compared=compared)


def _item_flags(session: Session, *, ranking_ids: list[int]) -> dict[tuple[int, int], frozenset[str]]:
    """Flags per (ranking id, completion id) stored for these rankings."""
    c = RankingItem.__table__.c
    flags: dict[tuple[int, int], frozenset[str]] = {}
    for chunk in range(0, len(ranking_ids), 1000):
        rows = session.execute(
            select(c.ranking_id, c.completion_id, c.flags).where(c.ranking_id.in_(ranking_ids[chunk : chunk + 1000]))
        ).all()
        for ranking_id, completion_id, item_flags in rows:
            flags[(ranking_id, completion_id)] = frozenset(item_flags or [])
    return flags


def compared_flag_stats(session: Session, *, compared: Sequence[tuple[int, int, int]]) -> dict[int, FlagStats]:
    """Per user: flags of their ranking compared item by item with a researcher's, given (user, mine, gold) ids."""
    flags = _item_flags(session, ranking_ids=sorted({r for _, mine, gold in compared for r in (mine, gold)}))
    completions_of: dict[int, set[int]] = defaultdict(set)
    for ranking_id, completion_id in flags:
        completions_of[ranking_id].add(completion_id)
    stats: dict[int, FlagStats] = defaultdict(FlagStats)
    for user_id, mine, gold in compared:
        s = stats[user_id]
        for completion_id in sorted(completions_of[mine] & completions_of[gold]):
            x, y = flags[(mine, completion_id)], flags[(gold, completion_id)]
            s.total += 1
            s.same_set += x == y
            for flag in FLAGS:
                xs, ys = s.labels.setdefault(flag, ([], []))
                xs.append(flag in x)
                ys.append(flag in y)
    return dict(stats)


def user_gold_units(session: Session, *, user_id: int, kinds: Sequence[TaskKind] = GOLD_KINDS) -> list[RankingPair]:
    """The user's rankings of gold-kind tasks compared with the researchers', oldest first (one pair per researcher)."""
    task_ids = select(Ranking.task_id).where(Ranking.labeler_id == user_id)
    tasks = load_task_rankings(session, task_ids=session.scalars(task_ids).all(), kinds=kinds)
    pairs = ranking_pairs(tasks.values())
    mine = []
    for p in pairs:
        if p.a.user_id == user_id and p.b.by_researcher:
            mine.append(p)
        elif p.b.user_id == user_id and p.a.by_researcher:
            mine.append(RankingPair(p.b, p.a, p.agree, p.comparable))
    return sorted(mine, key=lambda p: (p.a.created_at, p.a.id))
