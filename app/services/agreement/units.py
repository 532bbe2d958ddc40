"""Units: what each ranking, each task and each labeler contributes to the dashboards, computed from rankings.

The aggregate tables (``aggregates``) store exactly these rows; the same functions fill them on a submission (one
task) and on a full rebuild (every task), so the two cannot disagree. A ranking's row depends on its own task's
rankings only, a task's row likewise, and a labeler's figures on the labeler's unit rows only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import metrics
from app.models import FLAGS, Ranking, RankingTask
from app.services.agreement import pairs as ap
from app.services.agreement import pooling
from app.services.agreement.flags import FlagStats, compared_flag_stats
from app.services.agreement.table import RankingTable, load_rankings, split_by

_ZERO_UNIT = {
    "first_shown_won": -1,
    "strict": 0,
    **{f"{side}_{s}": 0 for side in ("gold", "peer") for s in ("refs", "credit", "pairs", "tied")},
    **{f"late_peer_{s}": 0 for s in ("n", "credit", "pairs")},
    **{f"late_rr_{s}": 0.0 for s in ("n", "y", "m", "yy", "ym", "mm")},
    "flag_same": 0,
    "flag_total": 0,
}


def _per_row(at: np.ndarray, weights: np.ndarray | None, n: int) -> np.ndarray:
    return np.bincount(at, weights=weights, minlength=n)


def _strict_per_row(table: RankingTable) -> np.ndarray:
    """Item pairs each ranking orders strictly."""
    strict = np.zeros(table.id.size, dtype=np.int64)
    for size in np.unique(table.k).tolist():
        rows = np.flatnonzero(table.k == size)
        ranks = table.ranks[rows, :size]  # (N_k, k)
        strict[rows] = np.count_nonzero(ranks[:, :, None] < ranks[:, None, :], axis=(1, 2))
    return strict


def _flag_counts(stats: FlagStats) -> dict[str, list[int]]:
    """Per flag: [both set, only the labeler, only the researcher, neither] over the compared completions."""
    counts = {}
    for flag, (xs, ys) in stats.labels.items():
        x, y = np.array(xs, dtype=bool), np.array(ys, dtype=bool)
        counts[flag] = [int(np.sum(x & y)), int(np.sum(x & ~y)), int(np.sum(~x & y)), int(np.sum(~x & ~y))]
    return counts


def _scored(table: RankingTable, session: Session) -> dict[int, dict[str, Any]]:
    """Per usable ranking id: its scores against the other rankings of its task."""
    n = table.id.size
    pairs = ap.table_pairs(table)
    r_i, r_j = table.by_researcher[pairs.i], table.by_researcher[pairs.j]
    gold, peer = ap.researcher_units(table, pairs), ap.peer_units(table, pairs)
    neither, both = ~r_i & ~r_j, r_i & r_j
    peer_credit, peer_n = pairs.peers()
    rr_y, rr_m, rr_at = peer_credit[both], peer_n[both].astype(np.float64), pairs.j[both]
    columns: dict[str, np.ndarray] = {
        "strict": _strict_per_row(table),
        "gold_refs": _per_row(np.r_[pairs.i[~r_i & r_j], pairs.j[r_i & ~r_j]], None, n),
        "peer_refs": _per_row(np.r_[pairs.i[neither], pairs.j[neither]], None, n),
        # a pair counts on the day of its later ranking: j, as the table is in (task, created_at, id) order
        "late_peer_n": _per_row(pairs.j[neither], None, n),
        "late_peer_credit": _per_row(pairs.j[neither], peer_credit[neither], n),
        "late_peer_pairs": _per_row(pairs.j[neither], peer_n[neither].astype(np.float64), n),
        "late_rr_n": _per_row(rr_at, None, n),
        "late_rr_y": _per_row(rr_at, rr_y, n),
        "late_rr_m": _per_row(rr_at, rr_m, n),
        "late_rr_yy": _per_row(rr_at, rr_y * rr_y, n),
        "late_rr_ym": _per_row(rr_at, rr_y * rr_m, n),
        "late_rr_mm": _per_row(rr_at, rr_m * rr_m, n),
    }
    for name, units in (("gold", gold), ("peer", peer)):
        for part in ("credit", "pairs", "tied"):
            column = np.zeros(n)
            column[units.row] = getattr(units, part)
            columns[f"{name}_{part}"] = column
    # flags compared per ranking: the grouping key is the ranking id rather than the user
    compared = [(mine, mine, ref) for _, mine, ref in ap.researcher_comparisons(table, pairs)]
    flags = compared_flag_stats(session, compared=compared)
    floats = {"gold_credit", "peer_credit", "late_peer_credit"} | {n for n in columns if n.startswith("late_rr_")}
    scored = {}
    for row, ranking_id in enumerate(table.id.tolist()):
        unit: dict[str, Any] = {name: (float(c[row]) if name in floats else int(c[row])) for name, c in columns.items()}
        stats = flags.get(ranking_id, FlagStats())
        unit |= {"flag_same": stats.same_set, "flag_total": stats.total, "flag_counts": _flag_counts(stats)}
        unit["first_shown_won"] = int(table.first_shown_won[row])
        scored[ranking_id] = unit
    return scored


def _task_row(table: RankingTable, at: np.ndarray, alphas: dict[int, float | None]) -> dict[str, Any]:
    """The per-task row of one task's rankings (table rows ``at``)."""
    task = table.take(at)
    task_id = int(task.task_id[0])
    pairs = ap.table_pairs(task)
    r_i, r_j = task.by_researcher[pairs.i], task.by_researcher[pairs.j]
    credit, comparable = ap.task_sums(task, pairs, ~r_i & ~r_j).get(task_id, (0.0, 0))
    every = ap.task_sums(task, pairs, np.ones(pairs.i.size, dtype=bool)).get(task_id)
    cells: dict[tuple[int, int], list[float]] = defaultdict(lambda: [0.0, 0, 0])
    for mine_is_i in (True, False):
        mine, ref = (pairs.i, pairs.j) if mine_is_i else (pairs.j, pairs.i)
        sel = task.by_researcher[ref]
        c, m, _ = pairs.against(np.full(pairs.i.size, mine_is_i))
        for key in zip(task.user_id[mine[sel]].tolist(), task.user_id[ref[sel]].tolist(), c[sel], m[sel], strict=True):
            cell = cells[(key[0], key[1])]
            cell[0] += float(key[2])
            cell[1] += int(key[3])
            cell[2] += 1
    agreement = credit / comparable if comparable else None
    return {
        "task_id": task_id,
        "kind": task.kind[0],
        "n_labelers": int(np.unique(task.user_id[~task.by_researcher]).size),
        "peer_credit": float(credit),
        "peer_pairs": int(comparable),
        "agreement": agreement,
        "sort_key": 2.0 if agreement is None else agreement,
        "all_score": None if every is None else (every[0] / every[1] if every[1] else 1.0),
        "alpha": alphas.get(task_id),
        "matrix": [[u, r, c, int(m), int(n)] for (u, r), (c, m, n) in sorted(cells.items())],
    }


def task_units(session: Session, *, task_ids: Sequence[int]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(one unit row per ranking, one row per task with a usable ranking) of these tasks, from their rankings."""
    r, t = Ranking.__table__.c, RankingTask.__table__.c
    stored = session.execute(
        select(r.id, r.task_id, r.labeler_id, r.by_researcher, r.created_at, r.time_spent_ms, t.kind, t.k)
        .join_from(Ranking.__table__, RankingTask.__table__, t.id == r.task_id)
        .where(r.task_id.in_(list(task_ids)))
    ).all()
    table = load_rankings(session, task_ids=task_ids)
    scored = _scored(table, session)
    units = []
    for ranking_id, task_id, user_id, by_researcher, created_at, ms, kind, k in stored:
        scores = scored.get(ranking_id)
        units.append(
            {
                "ranking_id": ranking_id,
                "task_id": task_id,
                "user_id": user_id,
                "kind": kind,
                "by_researcher": by_researcher,
                "usable": scores is not None,
                "created_at": created_at,
                "day": created_at.date(),
                "time_spent_ms": ms,
                "k": k,
                **(scores or _ZERO_UNIT | {"flag_counts": {}}),
            }
        )
    alphas = pooling.table_task_alphas(table)
    tasks = [_task_row(table, at, alphas) for _, at in split_by(table.task_id)]
    return units, tasks


def _pooled_json(n: int, y: np.ndarray, m: np.ndarray, tied: np.ndarray) -> dict[str, Any]:
    p = pooling.pooled(y, m, tied)
    return {"value": p.value, "n": n, "ci_low": p.ci_low, "ci_high": p.ci_high, "tied_share": p.tied_share}


def rolling_value(
    created_at: Sequence[datetime], ranking_id: np.ndarray, credit: np.ndarray, pairs: np.ndarray, *, window: int
) -> float | None:
    """Pooled agreement over the last ``window`` gold units (by time, then id), as ``pooling.rolling_gold``."""
    stamps = np.array([c.timestamp() for c in created_at])
    last = np.lexsort((ranking_id, stamps))[-window:]
    return pooling.pooled(credit[last], pairs[last]).value


def labeler_figures(units: dict[str, np.ndarray], created_at: list[datetime], *, window: int) -> dict[str, Any]:
    """The labelers table's figures of one user from the user's unit rows (columns of ``agreement_units``)."""
    gold_at, peer_at = units["gold_refs"] > 0, units["peer_refs"] > 0
    gold = _pooled_json(
        int(gold_at.sum()), units["gold_credit"][gold_at], units["gold_pairs"][gold_at], units["gold_tied"][gold_at]
    )
    peer = _pooled_json(
        int(peer_at.sum()), units["peer_credit"][peer_at], units["peer_pairs"][peer_at], units["peer_tied"][peer_at]
    )
    hidden = np.flatnonzero(gold_at & units["hidden_gold"])
    rolling = rolling_value(
        [created_at[i] for i in hidden.tolist()],
        units["ranking_id"][hidden],
        units["gold_credit"][hidden],
        units["gold_pairs"][hidden],
        window=window,
    )
    own = units["usable"] & ~units["by_researcher"]
    times = units["time_spent_ms"][own]
    times = times[times >= 0] / 1000  # -1 stands for no time recorded
    won = units["first_shown_won"][own]
    bias = metrics.position_bias(won[won >= 0] == 1, units["k"][own][won >= 0])
    flags = FlagStats(same_set=int(units["flag_same"].sum()), total=int(units["flag_total"].sum()))
    for flag in FLAGS if flags.total else ():
        both, mine, ref, neither = (
            int(sum(c.get(flag, [0, 0, 0, 0])[q] for c in units["flag_counts"])) for q in range(4)
        )
        flags.labels[flag] = (
            [True] * both + [True] * mine + [False] * (ref + neither),
            [True] * both + [False] * mine + [True] * ref + [False] * neither,
        )
    return {
        "gold": gold,
        "peer": peer,
        "rolling_gold_agreement": rolling,
        "rolling_window": window,
        "flag_agreement": flags.agreement,
        "flag_kappa": flags.kappa(),
        "flag_percent_agreement": flags.percent(),
        "flag_used": flags.used(),
        "median_seconds": float(np.median(times)) if times.size else None,
        "position_bias": None if bias.n == 0 else bias.observed_rate,
        "position_chance": None if bias.n == 0 else bias.chance_rate,
        "n_position": bias.n,
    }
