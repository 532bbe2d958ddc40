"""Report: the dashboards' and the API's views (labelers table, overview, matrix, per task, disagreements)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import NotFound
from app.models import (
    FLAGS,
    Completion,
    Prompt,
    RankingTask,
    Role,
    TaskCompletion,
    TaskStatus,
    User,
    agreement_days,
    agreement_labelers,
    agreement_matrix,
    agreement_tasks,
)
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
from app.services.agreement import aggregates, pooling
from app.services.agreement import pairs as ap
from app.services.agreement.table import RankingTable, load_rankings, split_by


def _interval(p: pooling.Pooled) -> Interval:
    return Interval(value=p.value, n=p.n, ci_low=p.ci_low, ci_high=p.ci_high, pairs=p.pairs, tied_share=p.tied_share)


_NO_POOL = {"value": None, "n": 0, "ci_low": None, "ci_high": None, "tied_share": None}
_NO_FIGURES: dict[str, Any] = {
    "gold": _NO_POOL,
    "peer": _NO_POOL,
    "rolling_gold_agreement": None,
    "flag_agreement": None,
    "flag_kappa": {flag: None for flag in FLAGS},
    "flag_percent_agreement": {flag: None for flag in FLAGS},
    "flag_used": {},
    "median_seconds": None,
    "position_bias": None,
    "position_chance": None,
    "n_position": 0,
}


def labeler_count(session: Session) -> int:
    """How many labelers the labelers table pages through."""
    return session.scalar(select(func.count()).select_from(User).where(User.role == Role.labeler)) or 0


def labeler_rows(
    session: Session,
    *,
    settings: Settings,
    user_ids: Sequence[int] | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[LabelerAgreementRead]:
    """One row per labeler (by username; a page of them with `limit` / `offset`): agreement with researchers and
    with other labelers, flags, speed, position bias."""
    aggregates.sync(session)
    u, a = User.__table__.c, agreement_labelers.c
    query = (
        select(u.id, u.username, u.status, u.gold_alert, u.screening_agreement, u.screening_flag_agreement)
        .add_columns(a.n_rankings, a.figures)
        .select_from(User.__table__.outerjoin(agreement_labelers, a.user_id == u.id))
        .where(u.role == Role.labeler)
        .order_by(u.username)
        .offset(offset)
        .limit(limit)
    )
    if user_ids is not None:
        query = query.where(u.id.in_(list(user_ids)))
    found = session.execute(query).all()
    stale = [r[0] for r in found if r[7] and r[7]["rolling_window"] != settings.gold_window]
    rolling = aggregates.rolling_gold(session, user_ids=stale, window=settings.gold_window) if stale else {}
    rows = []
    for user_id, username, status, gold_alert, screening, screening_flags, n_rankings, figures in found:
        f = figures or _NO_FIGURES
        g, p = f["gold"], f["peer"]
        rows.append(
            LabelerAgreementRead(
                user_id=user_id,
                username=username,
                status=status,
                gold_alert=gold_alert,
                n_rankings=n_rankings or 0,
                agreement_with_researchers=g["value"],
                n_gold=g["n"],
                ci_low=g["ci_low"],
                ci_high=g["ci_high"],
                tied_share=g["tied_share"],
                agreement_with_labelers=p["value"],
                n_overlap=p["n"],
                labelers_ci_low=p["ci_low"],
                labelers_ci_high=p["ci_high"],
                flag_agreement=f["flag_agreement"],
                flag_kappa=f["flag_kappa"],
                flag_percent_agreement=f["flag_percent_agreement"],
                flag_used=f.get("flag_used", {}),
                median_seconds=f["median_seconds"],
                position_bias=f["position_bias"],
                position_chance=f["position_chance"],
                n_position=f["n_position"],
                rolling_gold_agreement=rolling.get(user_id, f["rolling_gold_agreement"]),
                screening_agreement=screening,
                screening_flag_agreement=screening_flags,
            )
        )
    return rows


def task_rows(
    session: Session, *, min_labelers: int = 2, limit: int | None = None, offset: int = 0
) -> list[TaskAgreementRead]:
    """Inter-labeler agreement and ordinal alpha per task ranked by at least `min_labelers` labelers, lowest first
    (no agreement last); a page of them with `limit` / `offset`."""
    aggregates.sync(session)
    t = agreement_tasks.c
    query = (
        select(t.task_id, t.kind, RankingTask.overlap, t.n_labelers, t.agreement, t.peer_pairs, t.alpha)
        .join_from(agreement_tasks, RankingTask.__table__, RankingTask.id == t.task_id)
        .where(t.n_labelers >= min_labelers)
        .order_by(t.sort_key, t.task_id)
        .offset(offset)
        .limit(limit)
    )
    return [
        TaskAgreementRead(
            task_id=task_id, kind=kind, overlap=overlap, n_labelers=n, agreement=agreement, pairs=pairs, alpha=alpha
        )
        for task_id, kind, overlap, n, agreement, pairs, alpha in session.execute(query)
    ]


def _pooled(sums: Any, side: str, *, tied: bool = True) -> Interval:
    n, y, m, yy, ym, mm = (sums[f"{side}_{s}"] or 0 for s in ("n", "y", "m", "yy", "ym", "mm"))
    return _interval(pooling.pooled_from_sums(n, y, m, yy, ym, mm, (sums[f"{side}_tied"] or 0) if tied else None))


def overview(session: Session) -> OverviewRead:
    """Counts, pooled agreement (with researchers, between labelers, among researchers) and the daily series."""
    aggregates.sync(session)
    d = agreement_days.c
    sums = session.execute(select(*(func.sum(c).label(c.name) for c in d if c.name != "day"))).mappings().one()
    days = session.execute(select(agreement_days).order_by(d.day)).mappings().all()
    by_status = session.execute(
        select(User.status, func.count(User.id)).where(User.role == Role.labeler).group_by(User.status)
    ).all()
    by_kind = session.execute(select(RankingTask.kind, func.count(RankingTask.id)).group_by(RankingTask.kind)).all()
    open_tasks = session.scalar(select(func.count(RankingTask.id)).where(RankingTask.status == TaskStatus.open)) or 0
    mean_alpha = session.scalar(select(func.avg(agreement_tasks.c.alpha)))
    return OverviewRead(
        labelers_by_status={s.value: n for s, n in by_status},
        tasks_by_kind={k.value: n for k, n in by_kind},
        open_tasks=open_tasks,
        rankings=int(sums["rankings"] or 0),
        comparisons=int(sums["strict"] or 0),
        agreement_with_researchers=_pooled(sums, "gold"),
        inter_labeler=_pooled(sums, "peer"),
        researcher_agreement=_pooled(sums, "rr", tied=False),
        mean_task_alpha=None if mean_alpha is None else float(mean_alpha),
        series=[
            DayRead(
                day=day["day"],
                rankings=day["rankings"],
                agreement_with_researchers=(day["gold_y"] / day["gold_m"] if day["gold_m"] else None)
                if day["gold_n"]
                else None,
                inter_labeler=(day["late_peer_credit"] / day["late_peer_pairs"] if day["late_peer_pairs"] else None)
                if day["late_peer_n"]
                else None,
            )
            for day in days
            if day["rankings"] or day["gold_n"] or day["late_peer_n"]
        ],
    )


def matrix(session: Session) -> MatrixRead:
    """Pooled agreement of every ranker with every researcher over the tasks both ranked."""
    aggregates.sync(session)
    m = agreement_matrix.c
    cells = {
        (uid, rid): (credit, pairs, n)
        for uid, rid, credit, pairs, n in session.execute(
            select(m.user_id, m.researcher_id, m.credit, m.pairs, m.n).where(m.n > 0)
        )
    }
    researcher_ids = sorted({r for _, r in cells})
    row_ids = sorted({u for u, _ in cells})
    users = {
        uid: (name, role)
        for uid, name, role in session.execute(
            select(User.id, User.username, User.role).where(User.id.in_(researcher_ids + row_ids))
        )
    }
    row_order = sorted(row_ids, key=lambda uid: (users[uid][1] != Role.labeler, users[uid][0]))
    return MatrixRead(
        researchers=[ResearcherRef(user_id=r, username=users[r][0]) for r in researcher_ids],
        rows=[
            MatrixRow(
                user_id=uid,
                username=users[uid][0],
                role=users[uid][1],
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


def _buckets(table: RankingTable, n: int) -> list[list[str]]:
    """Buckets of completion letters (A = the task's first completion), best first."""
    buckets: dict[int, list[str]] = defaultdict(list)
    for position, rank in enumerate(table.ranks[n, : table.k[n]].tolist()):
        buckets[rank].append(chr(ord("A") + position))
    return [buckets[b] for b in sorted(buckets)]


def _views(
    table: RankingTable, rows: Sequence[int], users: dict[int, User], gold: dict[int, float | None]
) -> list[RankingView]:
    return [
        RankingView(
            ranking_id=int(table.id[n]),
            user_id=int(table.user_id[n]),
            username=users[int(table.user_id[n])].username,
            by_researcher=bool(table.by_researcher[n]),
            buckets=_buckets(table, n),
            agreement_with_researchers=gold.get(n),
        )
        for n in rows
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


def _shown(session: Session, task_ids: Sequence[int]) -> tuple[RankingTable, dict[int, float | None], dict[int, User]]:
    """The rankings of some tasks, each labeler ranking's agreement with researchers (by row), and their users."""
    table = load_rankings(session, task_ids=task_ids)
    units = ap.researcher_units(table, ap.table_pairs(table))
    gold = {
        n: (c / d if d else None)
        for n, c, d in zip(units.row.tolist(), units.credit.tolist(), units.pairs.tolist(), strict=True)
    }
    user_ids = set(table.user_id.tolist())
    users = {u.id: u for u in session.scalars(select(User).where(User.id.in_(user_ids)))}
    return table, gold, users


def disagreement_queue(session: Session, *, limit: int = 20) -> list[DisagreementRead]:
    """Tasks ranked by two or more people, lowest agreement among all their rankings (as peers) first."""
    aggregates.sync(session)
    t = agreement_tasks.c
    scored = session.execute(
        select(t.all_score, t.task_id).where(t.all_score.is_not(None)).order_by(t.all_score, t.task_id).limit(limit)
    ).all()
    return disagreement_rows(session, [(float(score), int(tid)) for score, tid in scored])


def disagreement_rows(session: Session, scored: Sequence[tuple[float, int]]) -> list[DisagreementRead]:
    """The queue's rows for (agreement, task id) pairs, lowest first: prompt, outputs, alpha and every ranking."""
    ids = [tid for _, tid in scored]
    # a ranking's agreement with researchers depends on its own task only, so the shown tasks suffice
    shown, gold, users = _shown(session, ids)
    alphas = pooling.table_task_alphas(shown)
    rows_of = dict(split_by(shown.task_id))
    prompts, completions = _texts(session, ids)
    return [
        DisagreementRead(
            task_id=tid,
            kind=shown.kind[rows_of[tid][0]],
            prompt=prompts.get(tid, ""),
            completions=completions[tid],
            agreement=score,
            alpha=alphas.get(tid),
            rankings=_views(shown, rows_of[tid].tolist(), users, gold),
        )
        for score, tid in scored
    ]


def labeler_detail(session: Session, *, settings: Settings, user: User) -> LabelerDetailRead:
    """A labeler's row plus, task by task, their ranking next to the researchers' rankings."""
    rows = labeler_rows(session, settings=settings, user_ids=[user.id])
    if not rows:
        raise NotFound(f"no labeler with id {user.id}")
    shown, gold, users = _shown(session, pooling.user_ranked_tasks(session, user_id=user.id))
    prompts, _ = _texts(session, sorted(set(shown.task_id.tolist())))
    items = []
    for task_id, at in split_by(shown.task_id):
        researchers = at[shown.by_researcher[at]].tolist()
        mine = at[shown.user_id[at] == user.id].tolist()
        if not researchers or not mine:
            continue
        items.append(
            LabelerTaskRead(
                task_id=task_id,
                kind=shown.kind[mine[0]],
                prompt=prompts.get(task_id, ""),
                ranked_at=shown.created_at[mine[0]],
                agreement=gold.get(mine[0]),
                mine=_views(shown, mine[:1], users, gold)[0],
                gold=_views(shown, researchers, users, gold),
            )
        )
    items.sort(key=lambda t: t.ranked_at, reverse=True)
    return LabelerDetailRead(labeler=rows[0], tasks=items)
