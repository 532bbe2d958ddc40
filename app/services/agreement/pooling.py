"""Pooling: units summed into the figures every consumer shows (dashboards, API, exports' filter, the gate).

A labeler's agreement with researchers is ``sum(credit) / sum(pairs)`` over their units (``pairs.Units``), the
share of tied pairs ``sum(tied) / sum(pairs)`` beside it, with n = units (rankings) and a 95% interval that keeps
its coverage at small n (``metrics.ratio_interval``; none under ``metrics.MIN_UNITS`` rankings). The same sums
give the screening gate's figure (screening tasks only), the rolling hidden-gold window (the last ``gold_window``
gold units) and the exports' ``min_agreement`` filter: one implementation of each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import metrics
from app.models import Ranking, TaskKind
from app.services.agreement import pairs as ap
from app.services.agreement.table import RankingTable, load_rankings, split_by

GOLD_KINDS = (TaskKind.gold, TaskKind.screening)
"""Task kinds researchers rank for labelers to be scored against."""


@dataclass
class Pooled:
    """A pooled pairwise agreement with its n (units) and 95% interval (None when nothing is comparable)."""

    value: float | None
    n: int
    ci_low: float | None
    ci_high: float | None
    pairs: int = 0
    tied_share: float | None = None


EMPTY = Pooled(None, 0, None, None)


def _finite(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def pooled_from_sums(n: int, y: float, m: float, yy: float, ym: float, mm: float, tied: float | None = None) -> Pooled:
    """``pooled`` from the unit sums (n, sum y, sum m, sum y^2, sum y m, sum m^2, sum tied), e.g. stored ones."""
    total = int(m)
    if total == 0:
        return Pooled(None, int(n), None, None, 0)
    low, high = metrics.ratio_interval_from_sums(n, y, m, yy, ym, mm)
    tied_share = None if tied is None else float(tied) / total
    return Pooled(float(y) / total, int(n), _finite(float(low)), _finite(float(high)), total, tied_share)


def pooled(credit: np.ndarray, pairs: np.ndarray, tied: np.ndarray | None = None) -> Pooled:
    """sum(credit) / sum(pairs) over units, the tied share, and a 95% interval over units
    (``metrics.ratio_interval``; None under ``metrics.MIN_UNITS`` units)."""
    y, m = np.asarray(credit, dtype=np.float64).ravel(), np.asarray(pairs, dtype=np.float64).ravel()
    if y.shape != m.shape:
        raise ValueError(f"credit and pairs differ in length: {y.size} vs {m.size}")
    summed_tied = None if tied is None else float(np.sum(tied))
    return pooled_from_sums(
        y.size, float(y.sum()), float(m.sum()), float(y @ y), float(y @ m), float(m @ m), summed_tied
    )


def pooled_units(units: ap.Units, at: np.ndarray | None = None) -> Pooled:
    """``pooled`` over all units, or those at positions ``at``."""
    if at is None:
        return pooled(units.credit, units.pairs, units.tied)
    return pooled(units.credit[at], units.pairs[at], units.tied[at])


def pooled_by_user(table: RankingTable, units: ap.Units, *, user_ids: set[int] | None = None) -> dict[int, Pooled]:
    """Pooled figure per user, for every user or only ``user_ids``."""
    return {
        uid: pooled_units(units, at)
        for uid, at in split_by(table.user_id[units.row])
        if user_ids is None or uid in user_ids
    }


def rolling_gold(table: RankingTable, units: ap.Units, *, window: int) -> dict[int, Pooled]:
    """Per user: pooled over their last ``window`` rankings of hidden gold tasks (by time, then id)."""
    gold = np.array([table.kind[n] == TaskKind.gold for n in units.row.tolist()], dtype=bool)
    at = np.flatnonzero(gold)
    if not at.size:
        return {}
    rows = units.row[at]
    stamps = np.array([table.created_at[n].timestamp() for n in rows.tolist()])
    at = at[np.lexsort((table.id[rows], stamps, table.user_id[rows]))]  # by user, then time, then id
    return {uid: pooled_units(units, at[mine[-window:]]) for uid, mine in split_by(table.user_id[units.row[at]])}


def user_ranked_tasks(session: Session, *, user_id: int) -> list[int]:
    """Ids of the tasks a user ranked."""
    return list(session.scalars(select(Ranking.task_id).where(Ranking.labeler_id == user_id)))


def user_table(session: Session, *, user_id: int, kinds: Sequence[TaskKind]) -> tuple[RankingTable, ap.PairTable]:
    """Every ranking of the tasks of these kinds that the user ranked, with their pairs scored."""
    table = load_rankings(session, task_ids=user_ranked_tasks(session, user_id=user_id), kinds=kinds)
    return table, ap.table_pairs(table)


def user_units(table: RankingTable, units: ap.Units, *, user_id: int) -> ap.Units:
    """The units of one user."""
    at = np.flatnonzero(table.user_id[units.row] == user_id)
    return ap.Units(units.row[at], units.credit[at], units.pairs[at], units.tied[at])


def labeler_habits(table: RankingTable) -> dict[int, tuple[float | None, metrics.PositionBias]]:
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


def table_task_alphas(table: RankingTable) -> dict[int, float | None]:
    """Krippendorff ordinal alpha of the labelers' rankings of each task (researchers left out), batched;
    None for a task with fewer than two labelers."""
    labeler = ~table.by_researcher
    task_ids, group = np.unique(table.task_id[labeler], return_inverse=True)
    if not task_ids.size:
        return {}
    alphas = metrics.ranking_alpha_grouped(table.ranks[labeler], group, task_ids.size)
    # distinct labelers per task: alpha needs two (one labeler's rankings never pair with each other)
    pairs = np.unique(np.stack([group, table.user_id[labeler]]), axis=1)
    labelers = np.bincount(pairs[0], minlength=task_ids.size)
    return {int(t): (_finite(float(a)) if n >= 2 else None) for t, a, n in zip(task_ids, alphas, labelers, strict=True)}
