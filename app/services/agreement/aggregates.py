"""Aggregates: the dashboards' figures kept up to date, so that no view reads every ranking.

* ``agreement_units`` (one row per ranking) and ``agreement_tasks`` (one per task) are recomputed for a whole task
  whenever one of its rankings changes (``units.task_units`` over that task's rankings);
* ``agreement_days`` and ``agreement_matrix`` are kept by difference (new task rows minus old ones): every value
  is a count or a multiple of 0.25, so float sums stay exact;
* ``agreement_labelers`` holds each user's ranking count (by difference) and figures recomputed from the user's unit
  rows (the median and the rolling window do not decompose). The user's row is locked (upserted) before the units
  are read, so of two transactions touching one labeler the second one reads the first one's committed units.

Which tasks changed is recorded by a session hook on every flush (rankings, their items, a task's kind); they are
refreshed before the transaction commits, and before any read of the aggregates in the same session (``sync``).
Deleting rankings or tasks, or changing ``gold_window``, needs ``rebuild`` (``ranklab agreement rebuild``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date
from itertools import chain
from typing import Any

import numpy as np
from sqlalchemy import Table, bindparam, delete, event, inspect, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, UOWTransaction

from app.config import get_settings
from app.models import (
    Ranking,
    RankingItem,
    RankingTask,
    TaskKind,
    agreement_days,
    agreement_labelers,
    agreement_matrix,
    agreement_tasks,
    agreement_units,
)
from app.services.agreement.units import labeler_figures, rolling_value, task_units

_PENDING_TASKS, _PENDING_RANKINGS = "agreement_pending_tasks", "agreement_pending_rankings"
_CHUNK = 5000


def _upsert(
    session: Session, table: Table, rows: list[dict[str, Any]], *, key: Sequence[str], add: Sequence[str]
) -> None:
    """Insert rows, or add their ``add`` columns to the stored row's; in key order (the same lock order everywhere)."""
    if not rows:
        return
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(index_elements=list(key), set_={c: table.c[c] + stmt.excluded[c] for c in add})
    session.execute(stmt, sorted(rows, key=lambda r: tuple(r[k] for k in key)))


def _day_sums(units: Iterable[Any], sign: int, into: dict[date, dict[str, float]]) -> None:
    """Add (sign 1) or take away (sign -1) what unit rows contribute to their days."""
    for u in units:
        d = into[u["day"]]
        d["rankings"] += sign
        d["strict"] += sign * u["strict"]
        for side in ("gold", "peer"):
            if u[f"{side}_refs"] > 0:
                y, m = u[f"{side}_credit"], u[f"{side}_pairs"]
                for name, value in (("n", 1), ("y", y), ("m", m), ("yy", y * y), ("ym", y * m), ("mm", m * m)):
                    d[f"{side}_{name}"] += sign * value
                d[f"{side}_tied"] += sign * u[f"{side}_tied"]
        for name in ("n", "y", "m", "yy", "ym", "mm"):
            d[f"rr_{name}"] += sign * u[f"late_rr_{name}"]
        for name in ("n", "credit", "pairs"):
            d[f"late_peer_{name}"] += sign * u[f"late_peer_{name}"]


def _matrix_cells(tasks: Iterable[Any], sign: int, into: dict[tuple[int, int], list[float]]) -> None:
    for task in tasks:
        for user_id, researcher_id, credit, pairs, n in task["matrix"]:
            cell = into[(user_id, researcher_id)]
            cell[0] += sign * credit
            cell[1] += sign * pairs
            cell[2] += sign * n


def _write_rollups(
    session: Session, days: dict[date, dict[str, float]], cells: dict[tuple[int, int], list[float]]
) -> None:
    day_rows = [{"day": day, **sums} for day, sums in days.items() if any(sums.values())]
    if day_rows:
        columns = [c.name for c in agreement_days.c if c.name != "day"]
        rows = [{c: row.get(c, 0) for c in ["day", *columns]} for row in day_rows]
        _upsert(session, agreement_days, rows, key=["day"], add=columns)
    matrix_rows = [
        {"user_id": u, "researcher_id": r, "credit": c, "pairs": int(p), "n": int(n)}
        for (u, r), (c, p, n) in cells.items()
        if n or p or c
    ]
    _upsert(session, agreement_matrix, matrix_rows, key=["user_id", "researcher_id"], add=["credit", "pairs", "n"])


def refresh_labelers(session: Session, *, user_ids: Iterable[int], window: int) -> None:
    """Recompute the figures of these users from their unit rows (their aggregate rows must exist)."""
    ids = sorted(set(user_ids))
    u = agreement_units.c
    names = ["ranking_id", "gold_refs", "gold_credit", "gold_pairs", "gold_tied", "peer_refs", "peer_credit"]
    names += ["peer_pairs", "peer_tied", "usable", "by_researcher", "k", "first_shown_won", "flag_same", "flag_total"]
    for start in range(0, len(ids), _CHUNK):
        rows = session.execute(
            select(u.user_id, u.kind, u.created_at, u.time_spent_ms, u.flag_counts, *(u[n] for n in names))
            .where(u.user_id.in_(ids[start : start + _CHUNK]))
            .order_by(u.user_id)
        ).all()
        updates = []
        for user_id, at in _group(np.array([r[0] for r in rows], dtype=np.int64)):
            mine = [rows[i] for i in at.tolist()]
            columns = {n: np.array([r[5 + c] for r in mine]) for c, n in enumerate(names)}
            columns["hidden_gold"] = np.array([r[1] == TaskKind.gold for r in mine], dtype=bool)
            columns["time_spent_ms"] = np.array([-1 if r[3] is None else r[3] for r in mine], dtype=np.float64)
            columns["flag_counts"] = [r[4] for r in mine]  # type: ignore[assignment]
            for n in ("usable", "by_researcher"):
                columns[n] = columns[n].astype(bool)
            figures = labeler_figures(columns, [r[2] for r in mine], window=window)
            updates.append({"uid": user_id, "figures": figures})
        if updates:
            stmt = update(agreement_labelers).where(agreement_labelers.c.user_id == bindparam("uid"))
            session.execute(stmt.values(figures=bindparam("figures")), updates)


def _group(values: np.ndarray) -> Iterable[tuple[int, np.ndarray]]:
    distinct, starts = np.unique(values, return_index=True)
    return zip(distinct.tolist(), np.split(np.arange(values.size), starts[1:]), strict=True)


def refresh_tasks(session: Session, *, task_ids: Iterable[int], window: int) -> None:
    """Recompute every aggregate row that these tasks' rankings feed (inside the caller's transaction)."""
    ids = sorted(set(task_ids))
    if not ids:
        return
    old_units = session.execute(select(agreement_units).where(agreement_units.c.task_id.in_(ids))).mappings().all()
    old_tasks = (
        session.execute(select(agreement_tasks.c.matrix).where(agreement_tasks.c.task_id.in_(ids))).mappings().all()
    )
    units, tasks = task_units(session, task_ids=ids)
    session.execute(delete(agreement_units).where(agreement_units.c.task_id.in_(ids)))
    session.execute(delete(agreement_tasks).where(agreement_tasks.c.task_id.in_(ids)))
    if units:
        session.execute(agreement_units.insert(), units)
    if tasks:
        session.execute(agreement_tasks.insert(), tasks)
    counts: dict[int, int] = defaultdict(int)
    for sign, rows in ((-1, old_units), (1, units)):
        for row in rows:
            counts[row["user_id"]] += sign
    _upsert(
        session,
        agreement_labelers,
        [{"user_id": uid, "n_rankings": n, "figures": None} for uid, n in counts.items()],
        key=["user_id"],
        add=["n_rankings"],
    )
    labelers = {row["user_id"] for row in chain(old_units, units) if not row["by_researcher"]}  # type: ignore[index]
    refresh_labelers(session, user_ids=labelers, window=window)
    days: dict[date, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    cells: dict[tuple[int, int], list[float]] = defaultdict(lambda: [0.0, 0, 0])
    _day_sums(old_units, -1, days)
    _day_sums(units, 1, days)
    _matrix_cells(old_tasks, -1, cells)
    _matrix_cells(tasks, 1, cells)
    _write_rollups(session, days, cells)


def rebuild(session: Session, *, window: int, chunk: int = 20_000) -> int:
    """Recompute every aggregate from the rankings (after the migration, or a change of ``gold_window``);
    returns the rankings seen."""
    for table in (agreement_units, agreement_tasks, agreement_labelers, agreement_days, agreement_matrix):
        session.execute(delete(table))
    task_ids = list(session.scalars(select(Ranking.task_id).distinct().order_by(Ranking.task_id)))
    days: dict[date, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    cells: dict[tuple[int, int], list[float]] = defaultdict(lambda: [0.0, 0, 0])
    counts: dict[int, int] = defaultdict(int)
    labelers: set[int] = set()
    seen = 0
    for start in range(0, len(task_ids), chunk):
        units, tasks = task_units(session, task_ids=task_ids[start : start + chunk])
        if units:
            session.execute(agreement_units.insert(), units)
        if tasks:
            session.execute(agreement_tasks.insert(), tasks)
        for row in units:
            counts[row["user_id"]] += 1
            if not row["by_researcher"]:
                labelers.add(row["user_id"])
        _day_sums(units, 1, days)
        _matrix_cells(tasks, 1, cells)
        seen += len(units)
    rows = [{"user_id": uid, "n_rankings": n, "figures": None} for uid, n in sorted(counts.items())]
    if rows:
        session.execute(agreement_labelers.insert(), rows)
    _write_rollups(session, days, cells)
    refresh_labelers(session, user_ids=labelers, window=window)
    return seen


def rolling_gold(session: Session, *, user_ids: Sequence[int], window: int) -> dict[int, float | None]:
    """Rolling hidden-gold agreement of these users at another ``window`` than the stored one, from their units."""
    u = agreement_units.c
    rows = session.execute(
        select(u.user_id, u.created_at, u.ranking_id, u.gold_credit, u.gold_pairs)
        .where(u.user_id.in_(list(user_ids)), u.kind == TaskKind.gold, u.gold_refs > 0)
        .order_by(u.user_id)
    ).all()
    out: dict[int, float | None] = {}
    for user_id, at in _group(np.array([r[0] for r in rows], dtype=np.int64)):
        mine = [rows[i] for i in at.tolist()]
        columns = [np.array([r[c] for r in mine]) for c in (2, 3, 4)]
        out[user_id] = rolling_value([r[1] for r in mine], *columns, window=window)
    return out


def labeler_agreement(session: Session) -> dict[int, float | None]:
    """Each user's pooled agreement with researchers (the exports' ``min_agreement`` filter), from the aggregates."""
    sync(session)
    rows = session.execute(select(agreement_labelers.c.user_id, agreement_labelers.c.figures)).all()
    return {uid: f["gold"]["value"] for uid, f in rows if f and f["gold"]["n"] > 0}


def is_empty(session: Session) -> bool:
    """No unit row although there are rankings (a database just migrated to the aggregates)."""
    no_units = session.scalar(select(agreement_units.c.ranking_id).limit(1)) is None
    return no_units and session.scalar(select(Ranking.id).limit(1)) is not None


def sync(session: Session) -> None:
    """Refresh the tasks changed in this session since the last refresh (a no-op when none did)."""
    while session.info.get(_PENDING_TASKS) or session.info.get(_PENDING_RANKINGS):
        tasks: set[int] = session.info.pop(_PENDING_TASKS, set())
        rankings: set[int] = session.info.pop(_PENDING_RANKINGS, set())
        if rankings:
            tasks |= set(session.scalars(select(Ranking.task_id).where(Ranking.id.in_(sorted(rankings)))))
        refresh_tasks(session, task_ids=tasks, window=get_settings().gold_window)


@event.listens_for(Session, "after_flush")
def _record_changes(session: Session, _flush: UOWTransaction) -> None:
    """Note the tasks whose rankings (or whose kind) a flush changed."""
    tasks: set[int] = session.info.setdefault(_PENDING_TASKS, set())
    rankings: set[int] = session.info.setdefault(_PENDING_RANKINGS, set())
    for obj in chain(session.new, session.dirty, session.deleted):
        if isinstance(obj, Ranking):
            tasks.add(obj.task_id)
        elif isinstance(obj, RankingItem):
            rankings.add(obj.ranking_id)
        elif isinstance(obj, RankingTask) and obj in session.dirty and inspect(obj).attrs.kind.history.has_changes():
            tasks.add(obj.id)
    if not tasks:
        session.info.pop(_PENDING_TASKS)
    if not rankings:
        session.info.pop(_PENDING_RANKINGS)


@event.listens_for(Session, "before_commit")
def _refresh_before_commit(session: Session) -> None:
    sync(session)
