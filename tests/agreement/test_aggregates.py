"""The kept aggregates equal a full recompute, on a random database after random submissions, researcher rankings,
re-rankings and a promotion to gold; and a rebuild gives the very rows the submissions left."""

import random
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.models import (
    FLAGS,
    RankingItem,
    TaskKind,
    agreement_days,
    agreement_labelers,
    agreement_matrix,
    agreement_tasks,
    agreement_units,
    utcnow,
)
from app.services import screening
from app.services.agreement import aggregates, recompute, report
from tests.agreement.helpers import add_ranking, make_task


def _order(rng: random.Random, k: int) -> list[list[int]]:
    items = list(range(k))
    rng.shuffle(items)
    cuts = sorted(rng.sample(range(1, k), rng.randrange(0, k)))
    return [items[a:b] for a, b in zip([0, *cuts], [*cuts, k], strict=True)]


def _same(got: Any, want: Any, where: str = "") -> None:
    """Equal, floats within 1e-9 (sums kept by difference are exact; a mean in SQL may differ in the last digit)."""
    if isinstance(want, dict):
        assert got.keys() == want.keys(), where
        for key in want:
            _same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for n, (a, b) in enumerate(zip(got, want, strict=True)):
            _same(a, b, f"{where}[{n}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), where
    else:
        assert got == want, where


def _random_database(db, factory, rng: random.Random) -> None:
    researchers = [factory.researcher() for _ in range(2)]
    labelers = [factory.labeler() for _ in range(7)]
    start = utcnow() - timedelta(days=5)
    rankings = []
    for _ in range(30):
        kind = rng.choice([TaskKind.gold, TaskKind.screening, TaskKind.production, TaskKind.eval])
        k = rng.randint(4, 7)
        task = make_task(db, kind=kind, k=k, overlap=3)
        people = rng.sample(labelers, rng.randint(1, 4))
        if kind in (TaskKind.gold, TaskKind.screening):
            people += rng.sample(researchers, rng.randint(0, 2))
        rng.shuffle(people)
        for person in people:
            flags = {i: rng.sample(FLAGS, rng.randint(0, 2)) for i in range(k) if rng.random() < 0.4}
            rankings.append(
                add_ranking(
                    db,
                    task=task,
                    user=person,
                    order=_order(rng, k),
                    flags=flags,
                    seconds=rng.choice([None, rng.uniform(5, 90)]),
                    display=rng.sample(range(k), k) if rng.random() < 0.7 else None,
                    at=start + timedelta(hours=rng.uniform(0, 120)),
                )
            )
        if kind == TaskKind.production and rng.random() < 0.2:
            screening.promote_to_gold(db, task=task, actor=researchers[0])
    for ranking in rng.sample(rankings, 8):  # re-rankings: new buckets (and ranks) for stored rankings
        ids = [c for bucket in ranking.buckets for c in bucket]
        rng.shuffle(ids)
        cut = rng.randint(1, len(ids) - 1)
        ranking.buckets = [ids[:cut], ids[cut:]]
        rank = {c: 0 if n < cut else 1 for n, c in enumerate(ids)}
        for item in db.scalars(select(RankingItem).where(RankingItem.ranking_id == ranking.id)):
            item.rank = rank[item.completion_id]
    db.flush()


def _stored(db) -> dict[str, list[dict[str, Any]]]:
    tables = (agreement_units, agreement_tasks, agreement_labelers, agreement_days, agreement_matrix)
    out = {}
    for table in tables:
        rows = [dict(r) for r in db.execute(select(table).order_by(*table.primary_key.columns)).mappings()]
        if table is agreement_matrix or table is agreement_days:  # kept by difference: all-zero rows may remain
            rows = [r for r in rows if any(v for k, v in r.items() if k not in ("day", "user_id", "researcher_id"))]
        out[table.name] = rows
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_kept_aggregates_equal_a_full_recompute(db, factory, settings, seed):
    _random_database(db, factory, random.Random(seed))
    dumped = [
        lambda m: [r.model_dump() for r in m.labeler_rows(db, settings=settings)],
        lambda m: m.overview(db).model_dump(),
        lambda m: m.matrix(db).model_dump(),
        lambda m: [r.model_dump() for r in m.task_rows(db)],
        lambda m: [r.model_dump() for r in m.disagreement_queue(db, limit=50)],
    ]
    for view in dumped:
        _same(view(report), view(recompute))
    assert report.task_rows(db, limit=5, offset=3) == report.task_rows(db)[3:8]
    assert (
        report.labeler_rows(db, settings=settings, limit=3, offset=2) == report.labeler_rows(db, settings=settings)[2:5]
    )
    kept = _stored(db)
    aggregates.rebuild(db, window=settings.gold_window)
    _same(_stored(db), kept)
