"""Time the labelers table (app.services.agreement_report.labeler_rows) over a seeded SQLite database.

.venv/bin/python bench/agreement_service.py --labelers 50 --tasks 2000 --overlap 3
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import make_engine
from app.migrate import upgrade
from app.models import Completion, Prompt, Ranking, RankingTask, Role, TaskCompletion, TaskKind, User
from app.services import agreement_report


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--labelers", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ranklab-bench-"))
    url = f"sqlite:///{folder / 'bench.db'}"
    upgrade(url, "head")
    engine = make_engine(url)
    with Session(engine) as session, session.begin():
        n = seed(
            session, labelers=args.labelers, tasks=args.tasks, overlap=args.overlap, k=args.k, rng=random.Random(0)
        )
    settings = Settings(env="test", database_url=url, data_dir=folder)
    with Session(engine) as session:
        start = time.perf_counter()
        rows = agreement_report.labeler_rows(session, settings=settings)
        elapsed = time.perf_counter() - start
    print(f"labeler_rows: {len(rows)} labelers, {n} rankings, {args.tasks} tasks (K={args.k}): {elapsed:.2f} s")


if __name__ == "__main__":
    main()
