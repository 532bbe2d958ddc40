"""Time the agreement views (app.services.agreement.report) over a seeded SQLite or PostgreSQL database.

.venv/bin/python bench/agreement_service.py --labelers 50 --tasks 5000 --overlap 3 --baseline 1.09
.venv/bin/python bench/agreement_service.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/rl_agree_bench \
    --labelers 10000 --tasks 333000 --overlap 3 --bulk --seed-only      # about 1M rankings, seeded once
PYTHONPATH=OLD_TREE .venv/bin/python bench/agreement_service.py --database-url ... --no-seed --dashboards

The first call is cold (statement compilation included), as the old single-call figure was; --repeat more
calls give the best warm time. --baseline takes seconds measured earlier for the same command and prints
the speed-up of the first call against it; --dashboards also times the other agreement views. With --no-seed the
database is used as it is, so an older tree (PYTHONPATH) can be timed on the very same data in the same run.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable, Sized
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import make_engine
from app.migrate import upgrade
from app.models import Completion, Prompt, Ranking, RankingTask, Role, TaskCompletion, TaskKind, User

try:
    from app.services.agreement import report as agreement_report
except ImportError:  # a tree from before app/services/agreement/ (timing the old code on the same database)
    from app.services import agreement_report  # type: ignore[attr-defined,no-redef]
try:
    from app.services.agreement import aggregates, recompute
except ImportError:  # a tree from before the aggregates: report is the full recompute
    aggregates = recompute = None  # type: ignore[assignment]


def seed(session: Session, *, labelers: int, tasks: int, overlap: int, k: int, rng: random.Random) -> int:
    users = [User(username=f"u{i}", password_hash="x", role=Role.labeler) for i in range(labelers)]
    users.append(User(username="researcher", password_hash="x", role=Role.researcher))
    session.add_all(users)
    session.flush()
    n_rankings = 0
    for t in range(tasks):
        prompt = Prompt(text=f"p{t}", content_hash=f"h{t}")
        session.add(prompt)
        session.flush()
        completions = [Completion(prompt_id=prompt.id, text=f"c{t}.{i}") for i in range(k)]
        session.add_all(completions)
        kind = TaskKind.gold if t % 10 == 0 else TaskKind.production
        task = RankingTask(prompt_id=prompt.id, kind=kind, k=k, overlap=overlap)
        session.add(task)
        session.flush()
        ids = [c.id for c in completions]
        session.execute(
            insert(TaskCompletion), [{"task_id": task.id, "position": i, "completion_id": c} for i, c in enumerate(ids)]
        )
        rankers = rng.sample(users[:-1], overlap) + ([users[-1]] if kind == TaskKind.gold else [])
        rows = []
        for user in rankers:
            order = ids[:]
            rng.shuffle(order)
            rows.append(
                {
                    "task_id": task.id,
                    "labeler_id": user.id,
                    "by_researcher": user.role == Role.researcher,
                    "buckets": [[c] for c in order],
                    "idempotency_key": f"{task.id}-{user.id}",
                    "time_spent_ms": 30000,
                }
            )
        session.execute(insert(Ranking), rows)
        n_rankings += len(rows)
    return n_rankings


def bulk_seed(session: Session, *, labelers: int, tasks: int, overlap: int, k: int, rng: random.Random) -> int:
    """``seed`` with Core bulk inserts and explicit ids (for a million rankings); gold every tenth task."""
    session.execute(insert(User), [{"username": "researcher", "password_hash": "x", "role": Role.researcher}])
    researcher = session.scalar(select(User.id).where(User.username == "researcher"))
    user_ids = list(
        session.scalars(
            insert(User).returning(User.id),
            [{"username": f"u{i}", "password_hash": "x", "role": Role.labeler} for i in range(labelers)],
        )
    )
    n_rankings, chunk = 0, 20_000
    for start in range(0, tasks, chunk):
        ids = range(start + 1, min(start + chunk, tasks) + 1)
        session.execute(insert(Prompt), [{"id": t, "text": f"p{t}", "content_hash": f"h{t}"} for t in ids])
        session.execute(
            insert(Completion), [{"id": t * k + i, "prompt_id": t, "text": f"c{t}.{i}"} for t in ids for i in range(k)]
        )
        kinds = {t: TaskKind.gold if t % 10 == 1 else TaskKind.production for t in ids}
        session.execute(
            insert(RankingTask), [{"id": t, "prompt_id": t, "kind": kinds[t], "k": k, "overlap": overlap} for t in ids]
        )
        session.execute(
            insert(TaskCompletion),
            [{"task_id": t, "position": i, "completion_id": t * k + i} for t in ids for i in range(k)],
        )
        rows = []
        for t in ids:
            rankers = rng.sample(user_ids, overlap) + ([researcher] if kinds[t] == TaskKind.gold else [])
            for user in rankers:
                order = [t * k + i for i in range(k)]
                rng.shuffle(order)
                rows.append(
                    {
                        "task_id": t,
                        "labeler_id": user,
                        "by_researcher": user == researcher,
                        "buckets": [[c] for c in order],
                        "idempotency_key": f"{t}-{user}",
                        "time_spent_ms": 30000,
                    }
                )
        session.execute(insert(Ranking), rows)
        n_rankings += len(rows)
    for table in ("prompts", "completions", "ranking_tasks"):  # explicit ids: move PostgreSQL's sequences past them
        if session.get_bind().dialect.name == "postgresql":
            session.execute(
                text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
            )
    return n_rankings


def _timed(call: Callable[[], Sized], repeat: int) -> tuple[int, float, float]:
    """(rows returned, first call seconds, best of the next `repeat` calls in seconds)."""
    start = time.perf_counter()
    rows = call()
    first = time.perf_counter() - start
    best = first
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return len(rows), first, best


def time_alpha(session: Session, *, repeat: int) -> None:
    """Krippendorff alpha of every task: ``table_task_alphas`` (batched) against ``ranking_alpha`` task by task."""
    from app import metrics
    from app.services.agreement import pooling
    from app.services.agreement.table import load_rankings, split_by

    table = load_rankings(session)

    def loop() -> dict[int, float | None]:
        out: dict[int, float | None] = {}
        for task_id, at in split_by(table.task_id):
            rows = at[~table.by_researcher[at]]
            if np.unique(table.user_id[rows]).size < 2:
                out[task_id] = None
                continue
            value = metrics.ranking_alpha(table.ranks[rows, : int(table.k[at[0]])])
            out[task_id] = float(value) if np.isfinite(value) else None
        return out

    looped, batched = loop(), pooling.table_task_alphas(table)
    same = looped.keys() == batched.keys() and all(
        (a is None and b is None) or (a is not None and b is not None and abs(a - b) < 1e-9)
        for a, b in ((looped[t], batched[t]) for t in looped)
    )
    best = {}
    for name, call in (("loop", loop), ("batched", lambda: pooling.table_task_alphas(table))):
        times = []
        for _ in range(repeat + 1):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        best[name] = min(times)
    print(
        f"task alpha over {len(looped)} tasks: loop {best['loop']:.3f} s, batched {best['batched']:.3f} s "
        f"({best['loop'] / best['batched']:.1f}x), identical: {same}"
    )


def time_refresh(session: Session, *, samples: int, rng: random.Random) -> None:
    """What a submission adds: ``aggregates.refresh_tasks`` of one random task (p50 / p99), rolled back."""
    task_ids = list(session.scalars(select(Ranking.task_id).distinct().limit(200_000)))
    window = Settings().gold_window
    times = []
    for task_id in rng.sample(task_ids, min(samples, len(task_ids))):
        with session.begin_nested() as nested:
            start = time.perf_counter()
            aggregates.refresh_tasks(session, task_ids=[task_id], window=window)
            times.append(time.perf_counter() - start)
            nested.rollback()
    p50, p99 = np.percentile(np.array(times) * 1000, [50, 99])
    print(f"refresh of one task (added to a submission): p50 {p50:.1f} ms, p99 {p99:.1f} ms over {len(times)} tasks")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--labelers", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3, help="warm calls timed after the first one")
    parser.add_argument("--baseline", type=float, help="seconds an earlier labeler_rows took on this command")
    parser.add_argument("--dashboards", action="store_true", help="also time overview, matrix, tasks, disagreements")
    parser.add_argument("--alpha", action="store_true", help="time per-task alpha: batched against a loop per task")
    parser.add_argument("--database-url", help="an empty database to seed (default: a new SQLite file)")
    parser.add_argument("--bulk", action="store_true", help="seed with Core bulk inserts (for a million rankings)")
    parser.add_argument("--seed-only", action="store_true", help="seed, time nothing")
    parser.add_argument("--no-seed", action="store_true", help="time the database as it is (seeded earlier)")
    parser.add_argument("--rebuild", action="store_true", help="(re)build the aggregates first, timed")
    parser.add_argument("--compare", action="store_true", help="also time the full recompute (old way), same run")
    parser.add_argument("--page", type=int, default=50, help="rows per page of the per-task list (aggregates)")
    parser.add_argument("--refresh-samples", type=int, default=0, help="time this many one-task refreshes")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ranklab-bench-"))
    url = args.database_url or f"sqlite:///{folder / 'bench.db'}"
    engine = make_engine(url)
    if args.no_seed:
        with Session(engine) as session:
            n = session.scalar(select(func.count(Ranking.id))) or 0
            args.tasks = session.scalar(select(func.count(RankingTask.id))) or 0
    else:
        upgrade(url, "head")
        start = time.perf_counter()
        with Session(engine) as session, session.begin():
            how = bulk_seed if args.bulk else seed
            n = how(
                session, labelers=args.labelers, tasks=args.tasks, overlap=args.overlap, k=args.k, rng=random.Random(0)
            )
        print(f"seeded {n} rankings in {time.perf_counter() - start:.0f} s")
    settings = Settings(env="test", database_url=url, data_dir=folder)
    if aggregates is not None and (args.rebuild or (not args.no_seed and not args.seed_only)):
        start = time.perf_counter()
        with Session(engine) as session, session.begin():
            aggregates.rebuild(session, window=settings.gold_window)
        print(f"aggregates rebuilt from {n} rankings in {time.perf_counter() - start:.0f} s")
    if engine.dialect.name == "postgresql" and (args.rebuild or not args.no_seed):
        with engine.connect() as connection:  # planner statistics, as autovacuum would gather them on a live database
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    if args.seed_only:
        return
    with Session(engine) as session:
        if args.refresh_samples and aggregates is not None:
            time_refresh(session, samples=args.refresh_samples, rng=random.Random(1))
        if args.alpha:
            time_alpha(session, repeat=args.repeat)
        sides = [("new", agreement_report)] if aggregates is not None else [("old", agreement_report)]
        if args.compare and recompute is not None:
            sides.append(("old", recompute))
        best_of: dict[tuple[str, str], float] = {}
        for side, module in sides:
            for name, call in _views(module, session, settings, args, paged=side == "new").items():
                size, first, best = _timed(call, args.repeat)
                best_of[(side, name)] = best
                print(
                    f"{side} {name}: {size} rows, {n} rankings, {args.tasks} tasks (K={args.k}): {first:.3f} s", end=""
                )
                print(f" first call, {best:.3f} s best of {args.repeat + 1}", end="")
                if name == "labeler_rows" and args.baseline:
                    print(f"; {args.baseline / first:.1f}x faster than the {args.baseline:.2f} s baseline", end="")
                print()
        for (side, name), best in best_of.items():
            old = best_of.get(("old", name))
            if side == "new" and old is not None:
                print(f"ratio {name}: old {old:.3f} s / new {best:.3f} s = {old / best:.0f}x")


def _views(
    module: Any, session: Session, settings: Settings, args: argparse.Namespace, *, paged: bool
) -> dict[str, Callable[[], Sized]]:
    views: dict[str, Callable[[], Sized]] = {"labeler_rows": lambda: module.labeler_rows(session, settings=settings)}
    if args.dashboards:
        page = {"limit": args.page} if paged else {}
        if paged:
            views["labeler_rows_page"] = lambda: module.labeler_rows(session, settings=settings, limit=args.page)
        views |= {
            "overview": lambda: module.overview(session).series,
            "matrix": lambda: module.matrix(session).rows,
            "task_rows": lambda: module.task_rows(session, **page),
            "disagreement_queue": lambda: module.disagreement_queue(session),
        }
    return views


if __name__ == "__main__":
    main()
