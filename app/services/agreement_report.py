"""Dashboard figures built from app.services.agreement: labelers table, overview, matrix, per-task agreement."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import NotFound
from app.models import Completion, Prompt, Ranking, RankingTask, Role, TaskCompletion, TaskKind, TaskStatus, User
from app.schemas.agreement import (
    DayRead,
    DisagreementRead,
    Interval,
    LabelerAgreementRead,
    LabelerDetailRead,
    LabelerTaskRead,
    MatrixCell,
    MatrixRead,
    MatrixRow,
    OverviewRead,
    RankingView,
    ResearcherRef,
    TaskAgreementRead,
)
from app.services import agreement as ag


def _interval(p: ag.Pooled) -> Interval:
    return Interval(value=p.value, n=p.n, ci_low=p.ci_low, ci_high=p.ci_high, pairs=p.pairs)


def _pool_units(units: Sequence[tuple[ag.RankingRecord, int, int]]) -> ag.Pooled:
    return ag.pooled([n for _, n, _ in units], [d for _, _, d in units])


def rolling_gold(units: dict[int, tuple[ag.RankingRecord, int, int]], *, window: int) -> dict[int, float | None]:
    """Per user: pooled agreement over their last `window` rankings of hidden gold tasks."""
    per_user: dict[int, list[tuple[ag.RankingRecord, int, int]]] = defaultdict(list)
    for unit in units.values():
        if unit[0].kind == TaskKind.gold:
            per_user[unit[0].user_id].append(unit)
    result = {}
    for uid, rows in per_user.items():
        rows.sort(key=lambda u: (u[0].created_at, u[0].id))
        result[uid] = _pool_units(rows[-window:]).value
    return result


def labeler_rows(
    session: Session, *, settings: Settings, user_ids: Sequence[int] | None = None
) -> list[LabelerAgreementRead]:
    """One row per labeler: agreement with researchers and with other labelers, flags, speed, position bias."""
    query = select(User).where(User.role == Role.labeler).order_by(User.username)
    if user_ids is not None:
        query = query.where(User.id.in_(list(user_ids)))
    users = list(session.scalars(query))
    tasks = ag.load_task_rankings(session)
    pairs = ag.ranking_pairs(tasks.values())
    gold_units = ag.researcher_units(pairs)
    gold = ag.pooled_by_user(gold_units)
    peers = ag.pooled_by_user(ag.peer_units(pairs))
    flags = ag.flag_stats(session, pairs=pairs)
    rolling = rolling_gold(gold_units, window=settings.gold_window)
    records: dict[int, list[ag.RankingRecord]] = defaultdict(list)
    for task in tasks.values():
        for r in task.labeler_rankings:
            records[r.user_id].append(r)
    n_rankings = {
        uid: n
        for uid, n in session.execute(select(Ranking.labeler_id, func.count(Ranking.id)).group_by(Ranking.labeler_id))
    }
    empty = ag.Pooled(None, 0, None, None)
    rows = []
    for u in users:
        g, p, f = gold.get(u.id, empty), peers.get(u.id, empty), flags.get(u.id, ag.FlagStats())
        bias = ag.position_bias(records[u.id])
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
                agreement_with_labelers=p.value,
                n_overlap=p.n,
                labelers_ci_low=p.ci_low,
                labelers_ci_high=p.ci_high,
                flag_agreement=f.agreement,
                flag_kappa=f.kappa(),
                median_seconds=ag.median_seconds(records[u.id]),
                position_bias=None if bias.n == 0 else bias.observed_rate,
                position_chance=None if bias.n == 0 else bias.chance_rate,
                n_position=bias.n,
                rolling_gold_agreement=rolling.get(u.id),
                screening_agreement=u.screening_agreement,
                screening_flag_agreement=u.screening_flag_agreement,
            )
        )
    return rows


def task_rows(session: Session, *, min_labelers: int = 2) -> list[TaskAgreementRead]:
    """Inter-labeler agreement and ordinal alpha per task ranked by at least `min_labelers` labelers."""
    tasks = ag.load_task_rankings(session)
    overlap = {
        tid: n
        for tid, n in session.execute(
            select(RankingTask.id, RankingTask.overlap).where(RankingTask.id.in_(list(tasks)))
        )
    }
    rows = []
    for task in tasks.values():
        labelers = {r.user_id for r in task.labeler_rankings}
        if len(labelers) < min_labelers:
            continue
        pairs = ag.inter_labeler_pairs(ag.ranking_pairs([task]))
        comparable = sum(p.comparable for p in pairs)
        rows.append(
            TaskAgreementRead(
                task_id=task.task_id,
                kind=task.kind,
                overlap=overlap.get(task.task_id, 1),
                n_labelers=len(labelers),
                agreement=sum(p.agree for p in pairs) / comparable if comparable else None,
                pairs=comparable,
                alpha=ag.task_alpha(task),
            )
        )
    return sorted(rows, key=lambda t: (t.agreement if t.agreement is not None else 2.0, t.task_id))


def _daily(units: dict[int, tuple[ag.RankingRecord, int, int]]) -> dict[date, float | None]:
    per_day: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    for record, n, d in units.values():
        per_day[record.day][0] += n
        per_day[record.day][1] += d
    return {day: (n / d if d else None) for day, (n, d) in per_day.items()}


def _inter_labeler_daily(pairs: Sequence[ag.RankingPair]) -> dict[date, float | None]:
    per_day: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    for p in pairs:
        day = max(p.a.created_at, p.b.created_at).date()  # the day the second ranking made the pair
        per_day[day][0] += p.agree
        per_day[day][1] += p.comparable
    return {day: (n / d if d else None) for day, (n, d) in per_day.items()}


def _rankings_per_day(session: Session) -> dict[date, int]:
    rows = session.execute(select(Ranking.created_at)).scalars()
    counts: dict[date, int] = defaultdict(int)
    for created_at in rows:
        counts[created_at.date()] += 1
    return counts


def overview(session: Session) -> OverviewRead:
    """Counts, pooled agreement (with researchers, between labelers, among researchers) and the daily series."""
    tasks = ag.load_task_rankings(session)
    pairs = ag.ranking_pairs(tasks.values())
    gold_units = ag.researcher_units(pairs)
    peer_units = ag.peer_units(pairs)
    researcher_pairs = [p for p in pairs if p.a.by_researcher and p.b.by_researcher]
    by_status = session.execute(
        select(User.status, func.count(User.id)).where(User.role == Role.labeler).group_by(User.status)
    ).all()
    by_kind = session.execute(select(RankingTask.kind, func.count(RankingTask.id)).group_by(RankingTask.kind)).all()
    open_tasks = session.scalar(select(func.count(RankingTask.id)).where(RankingTask.status == TaskStatus.open)) or 0
    comparisons = sum(
        int(np.count_nonzero(r.ranks[:, None] < r.ranks[None, :])) for t in tasks.values() for r in t.rankings
    )
    per_day = _rankings_per_day(session)
    gold_daily, peer_daily = _daily(gold_units), _inter_labeler_daily(ag.inter_labeler_pairs(pairs))
    alphas = [a for a in (ag.task_alpha(t) for t in tasks.values()) if a is not None]
    return OverviewRead(
        labelers_by_status={s.value: n for s, n in by_status},
        tasks_by_kind={k.value: n for k, n in by_kind},
        open_tasks=open_tasks,
        rankings=sum(per_day.values()),
        comparisons=comparisons,
        agreement_with_researchers=_interval(_pool_units(list(gold_units.values()))),
        inter_labeler=_interval(_pool_units(list(peer_units.values()))),
        researcher_agreement=_interval(
            ag.pooled([p.agree for p in researcher_pairs], [p.comparable for p in researcher_pairs])
        ),
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
    pairs = ag.ranking_pairs(ag.load_task_rankings(session).values())
    cells: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0, 0])
    for p in pairs:
        for mine, gold in ((p.a, p.b), (p.b, p.a)):
            if gold.by_researcher:
                cell = cells[(mine.user_id, gold.user_id)]
                cell[0] += p.agree
                cell[1] += p.comparable
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
                        n=cells[(uid, r)][2],
                    )
                    if (uid, r) in cells
                    else MatrixCell(agreement=None, n=0)
                    for r in researcher_ids
                ],
            )
            for uid in row_order
        ],
    )


def _labels(task: ag.TaskRankings, record: ag.RankingRecord) -> list[list[str]]:
    """Buckets of completion letters (A = the task's first completion), best first."""
    buckets: dict[int, list[str]] = defaultdict(list)
    for position, rank in enumerate(record.ranks):
        buckets[int(rank)].append(chr(ord("A") + position))
    return [buckets[b] for b in sorted(buckets)]


def _views(
    task: ag.TaskRankings, records: Sequence[ag.RankingRecord], users: dict[int, User], gold: dict[int, float | None]
) -> list[RankingView]:
    return [
        RankingView(
            ranking_id=r.id,
            user_id=r.user_id,
            username=users[r.user_id].username,
            by_researcher=r.by_researcher,
            buckets=_labels(task, r),
            agreement_with_researchers=gold.get(r.id),
        )
        for r in records
    ]


def _texts(session: Session, task_ids: Sequence[int]) -> tuple[dict[int, str], dict[int, list[str]]]:
    prompts = {
        tid: text
        for tid, text in session.execute(
            select(RankingTask.id, Prompt.text)
            .join(Prompt, Prompt.id == RankingTask.prompt_id)
            .where(RankingTask.id.in_(list(task_ids)))
        )
    }
    completions: dict[int, list[str]] = defaultdict(list)
    for tid, text in session.execute(
        select(TaskCompletion.task_id, Completion.text)
        .join(Completion, Completion.id == TaskCompletion.completion_id)
        .where(TaskCompletion.task_id.in_(list(task_ids)))
        .order_by(TaskCompletion.task_id, TaskCompletion.position)
    ):
        completions[tid].append(text)
    return prompts, completions


def _unit_agreement(units: dict[int, tuple[ag.RankingRecord, int, int]]) -> dict[int, float | None]:
    return {rid: (n / d if d else None) for rid, (_, n, d) in units.items()}


def disagreement_queue(session: Session, *, limit: int = 20) -> list[DisagreementRead]:
    """Tasks ranked by two or more people, lowest agreement among all their rankings first."""
    tasks = ag.load_task_rankings(session)
    pairs = ag.ranking_pairs(tasks.values())
    per_task: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for p in pairs:
        per_task[p.a.task_id][0] += p.agree
        per_task[p.a.task_id][1] += p.comparable
    scored = sorted(
        ((n / d if d else 1.0, tid) for tid, (n, d) in per_task.items() if tid in tasks),
        key=lambda item: item,
    )[:limit]
    ids = [tid for _, tid in scored]
    prompts, completions = _texts(session, ids)
    gold = _unit_agreement(ag.researcher_units(pairs))
    users = {
        u.id: u
        for u in session.scalars(select(User).where(User.id.in_({r.user_id for t in ids for r in tasks[t].rankings})))
    }
    return [
        DisagreementRead(
            task_id=tid,
            kind=tasks[tid].kind,
            prompt=prompts.get(tid, ""),
            completions=completions[tid],
            agreement=score,
            alpha=ag.task_alpha(tasks[tid]),
            rankings=_views(tasks[tid], tasks[tid].rankings, users, gold),
        )
        for score, tid in scored
    ]


def labeler_detail(session: Session, *, settings: Settings, user: User) -> LabelerDetailRead:
    """A labeler's row plus, task by task, their ranking next to the researchers' rankings."""
    rows = labeler_rows(session, settings=settings, user_ids=[user.id])
    if not rows:
        raise NotFound(f"no labeler with id {user.id}")
    task_ids = session.scalars(select(Ranking.task_id).where(Ranking.labeler_id == user.id)).all()
    tasks = ag.load_task_rankings(session, task_ids=task_ids)
    pairs = ag.ranking_pairs(tasks.values())
    gold = _unit_agreement(ag.researcher_units(pairs))
    shown = [t for t in tasks.values() if t.researcher_rankings and any(r.user_id == user.id for r in t.rankings)]
    prompts, _ = _texts(session, [t.task_id for t in shown])
    users = {
        u.id: u
        for u in session.scalars(select(User).where(User.id.in_({r.user_id for t in shown for r in t.rankings})))
    }
    items = []
    for task in shown:
        mine = next(r for r in task.rankings if r.user_id == user.id)
        items.append(
            LabelerTaskRead(
                task_id=task.task_id,
                kind=task.kind,
                prompt=prompts.get(task.task_id, ""),
                ranked_at=mine.created_at,
                agreement=gold.get(mine.id),
                mine=_views(task, [mine], users, gold)[0],
                gold=_views(task, task.researcher_rankings, users, gold),
            )
        )
    items.sort(key=lambda t: t.ranked_at, reverse=True)
    return LabelerDetailRead(labeler=rows[0], tasks=items)
