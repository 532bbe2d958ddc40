"""Full recompute: every view computed from all rankings on each call (what the views did before the aggregates).

The reference that the kept aggregates (``aggregates``, read by ``report``) must equal, in tests and in
``bench/agreement_service.py``; too slow for requests at scale (it loads and scores every ranking).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import metrics
from app.config import Settings
from app.models import Ranking, RankingTask, Role, TaskStatus, User
from app.schemas.agreement import (
    DayRead,
    DisagreementRead,
    LabelerAgreementRead,
    MatrixCell,
    MatrixRead,
    MatrixRow,
    OverviewRead,
    ResearcherRef,
    TaskAgreementRead,
)
from app.services.agreement import pairs as ap
from app.services.agreement import pooling
from app.services.agreement.flags import FlagStats, compared_flag_stats
from app.services.agreement.report import _interval, disagreement_rows
from app.services.agreement.table import load_rankings, split_by


def labeler_rows(
    session: Session, *, settings: Settings, user_ids: Sequence[int] | None = None
) -> list[LabelerAgreementRead]:
    """One row per labeler: agreement with researchers and with other labelers, flags, speed, position bias."""
    query = select(User).where(User.role == Role.labeler).order_by(User.username)
    if user_ids is not None:
        query = query.where(User.id.in_(list(user_ids)))
    users = list(session.scalars(query))
    table = load_rankings(session)
    pairs = ap.table_pairs(table)
    gold_units = ap.researcher_units(table, pairs)
    wanted = {u.id for u in users}
    gold = pooling.pooled_by_user(table, gold_units, user_ids=wanted)
    peers = pooling.pooled_by_user(table, ap.peer_units(table, pairs), user_ids=wanted)
    flags = compared_flag_stats(session, compared=ap.researcher_comparisons(table, pairs))
    rolling = pooling.rolling_gold(table, gold_units, window=settings.gold_window)
    habits = pooling.labeler_habits(table)
    n_rankings = {
        uid: n
        for uid, n in session.execute(select(Ranking.labeler_id, func.count(Ranking.id)).group_by(Ranking.labeler_id))
    }
    rows = []
    for u in users:
        g, p, f = gold.get(u.id, pooling.EMPTY), peers.get(u.id, pooling.EMPTY), flags.get(u.id, FlagStats())
        median_seconds, bias = habits.get(u.id, (None, metrics.PositionBias(float("nan"), float("nan"), 0)))
        rows.append(
            LabelerAgreementRead(
                user_id=u.id,
                username=u.username,
                status=u.status,
                gold_alert=u.gold_alert,
                n_rankings=n_rankings.get(u.id, 0),
                agreement_with_researchers=g.value,
                n_gold=g.n,
                ci_low=g.ci_low,
                ci_high=g.ci_high,
                tied_share=g.tied_share,
                agreement_with_labelers=p.value,
                n_overlap=p.n,
                labelers_ci_low=p.ci_low,
                labelers_ci_high=p.ci_high,
                flag_agreement=f.agreement,
                flag_kappa=f.kappa(),
                flag_percent_agreement=f.percent(),
                flag_used=f.used(),
                median_seconds=median_seconds,
                position_bias=None if bias.n == 0 else bias.observed_rate,
                position_chance=None if bias.n == 0 else bias.chance_rate,
                n_position=bias.n,
                rolling_gold_agreement=rolling.get(u.id, pooling.EMPTY).value,
                screening_agreement=u.screening_agreement,
                screening_flag_agreement=u.screening_flag_agreement,
            )
        )
    return rows


def task_rows(session: Session, *, min_labelers: int = 2) -> list[TaskAgreementRead]:
    """Inter-labeler agreement and ordinal alpha per task ranked by at least `min_labelers` labelers."""
    table = load_rankings(session)
    pairs = ap.table_pairs(table)
    sums = ap.task_sums(table, pairs, ~table.by_researcher[pairs.i] & ~table.by_researcher[pairs.j])
    task_ids = np.unique(table.task_id).tolist()
    query = select(RankingTask.id, RankingTask.overlap).where(RankingTask.id.in_(task_ids))
    overlap: dict[int, int] = {task_id: n for task_id, n in session.execute(query)}
    alphas = pooling.table_task_alphas(table)
    rows = []
    for task_id, at in split_by(table.task_id):
        labelers = np.unique(table.user_id[at[~table.by_researcher[at]]]).size
        if labelers < min_labelers:
            continue
        agree, comparable = sums.get(task_id, (0, 0))
        rows.append(
            TaskAgreementRead(
                task_id=task_id,
                kind=table.kind[at[0]],
                overlap=overlap.get(task_id, 1),
                n_labelers=labelers,
                agreement=agree / comparable if comparable else None,
                pairs=comparable,
                alpha=alphas.get(task_id),
            )
        )
    return sorted(rows, key=lambda t: (t.agreement if t.agreement is not None else 2.0, t.task_id))


def _daily(days: list[date], units: ap.Units) -> dict[date, float | None]:
    per_day: dict[date, list[float]] = defaultdict(lambda: [0.0, 0])
    for n, credit, pairs in zip(units.row.tolist(), units.credit.tolist(), units.pairs.tolist(), strict=True):
        per_day[days[n]][0] += credit
        per_day[days[n]][1] += pairs
    return {day: (n / d if d else None) for day, (n, d) in per_day.items()}


def _inter_labeler_daily(days: list[date], pairs: ap.PairTable, mask: np.ndarray) -> dict[date, float | None]:
    per_day: dict[date, list[float]] = defaultdict(lambda: [0.0, 0])
    credit, n = pairs.peers()
    columns = (pairs.i[mask], pairs.j[mask], credit[mask], n[mask])
    for i, j, c, d in zip(*(c.tolist() for c in columns), strict=True):
        day = max(days[i], days[j])  # the day the second ranking made the pair
        per_day[day][0] += c
        per_day[day][1] += d
    return {day: (n / d if d else None) for day, (n, d) in per_day.items()}


def _rankings_per_day(session: Session) -> dict[date, int]:
    rows = session.execute(select(Ranking.created_at)).scalars()
    counts: dict[date, int] = defaultdict(int)
    for created_at in rows:
        counts[created_at.date()] += 1
    return counts


def overview(session: Session) -> OverviewRead:
    """Counts, pooled agreement (with researchers, between labelers, among researchers) and the daily series."""
    table = load_rankings(session)
    pairs = ap.table_pairs(table)
    gold_units, peer_units = ap.researcher_units(table, pairs), ap.peer_units(table, pairs)
    r_i, r_j = table.by_researcher[pairs.i], table.by_researcher[pairs.j]
    by_status = session.execute(
        select(User.status, func.count(User.id)).where(User.role == Role.labeler).group_by(User.status)
    ).all()
    by_kind = session.execute(select(RankingTask.kind, func.count(RankingTask.id)).group_by(RankingTask.kind)).all()
    open_tasks = session.scalar(select(func.count(RankingTask.id)).where(RankingTask.status == TaskStatus.open)) or 0
    per_day = _rankings_per_day(session)
    days = [created_at.date() for created_at in table.created_at]
    gold_daily, peer_daily = _daily(days, gold_units), _inter_labeler_daily(days, pairs, ~r_i & ~r_j)
    alphas = [a for a in pooling.table_task_alphas(table).values() if a is not None]
    peer_credit, peer_n = pairs.peers()
    return OverviewRead(
        labelers_by_status={s.value: n for s, n in by_status},
        tasks_by_kind={k.value: n for k, n in by_kind},
        open_tasks=open_tasks,
        rankings=sum(per_day.values()),
        comparisons=ap.strict_comparisons(table),
        agreement_with_researchers=_interval(pooling.pooled_units(gold_units)),
        inter_labeler=_interval(pooling.pooled_units(peer_units)),
        researcher_agreement=_interval(pooling.pooled(peer_credit[r_i & r_j], peer_n[r_i & r_j])),
        mean_task_alpha=float(np.mean(alphas)) if alphas else None,
        series=[
            DayRead(
                day=day,
                rankings=per_day.get(day, 0),
                agreement_with_researchers=gold_daily.get(day),
                inter_labeler=peer_daily.get(day),
            )
            for day in sorted(set(per_day) | set(gold_daily) | set(peer_daily))
        ],
    )


def matrix(session: Session) -> MatrixRead:
    """Pooled agreement of every ranker with every researcher over the tasks both ranked."""
    table = load_rankings(session)
    pairs = ap.table_pairs(table)
    cells: dict[tuple[int, int], list[float]] = defaultdict(lambda: [0.0, 0, 0])
    for mine_is_i in (True, False):
        mine, gold = (pairs.i, pairs.j) if mine_is_i else (pairs.j, pairs.i)
        at = table.by_researcher[gold]
        credit, n, _ = pairs.against(np.full(pairs.i.size, mine_is_i))
        columns = (table.user_id[mine[at]], table.user_id[gold[at]], credit[at], n[at])
        for mine_user, gold_user, agree, comparable in zip(*(c.tolist() for c in columns), strict=True):
            cell = cells[(mine_user, gold_user)]
            cell[0] += agree
            cell[1] += comparable
            cell[2] += 1
    researcher_ids = sorted({r for _, r in cells})
    row_ids = sorted({m for m, _ in cells})
    users = {u.id: u for u in session.scalars(select(User).where(User.id.in_(researcher_ids + row_ids)))}
    row_order = sorted(row_ids, key=lambda uid: (users[uid].role != Role.labeler, users[uid].username))
    return MatrixRead(
        researchers=[ResearcherRef(user_id=r, username=users[r].username) for r in researcher_ids],
        rows=[
            MatrixRow(
                user_id=uid,
                username=users[uid].username,
                role=users[uid].role,
                cells=[
                    MatrixCell(
                        agreement=(cells[(uid, r)][0] / cells[(uid, r)][1]) if cells[(uid, r)][1] else None,
                        n=int(cells[(uid, r)][2]),
                    )
                    if (uid, r) in cells
                    else MatrixCell(agreement=None, n=0)
                    for r in researcher_ids
                ],
            )
            for uid in row_order
        ],
    )


def disagreement_queue(session: Session, *, limit: int = 20) -> list[DisagreementRead]:
    """Tasks ranked by two or more people, lowest agreement among all their rankings (as peers) first."""
    table = load_rankings(session)
    pairs = ap.table_pairs(table)
    per_task = ap.task_sums(table, pairs, np.ones(pairs.i.size, dtype=bool))
    scored = sorted(((n / d if d else 1.0, tid) for tid, (n, d) in per_task.items()), key=lambda item: item)[:limit]
    return disagreement_rows(session, scored)
