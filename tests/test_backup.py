"""Issue 22, item 7: `ranklab backup` of a live server while labelers rank over HTTP, `ranklab restore` into a fresh
database, and every table of the restored database compared with the snapshot.

Runs on the suite's database kind. The snapshot is read independently of `ranklab restore`: on SQLite the backup
file itself, on PostgreSQL a database the test loads with plain `pg_restore`. The snapshot must also be consistent
(taken under load, it holds whole transactions only): every ranking's assignment submitted, every task's slot count
equal to its assignments, the agreement aggregates equal to a rebuild, every ranking as the live server has it.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.db import make_engine
from app.models import Assignment, AssignmentStatus, Base, ModelKind, ModelVersion, Ranking, RankingTask
from app.services.agreement import aggregates
from tests.agreement.test_aggregates import _same, _stored
from tests.cli import ranklab
from tests.labeling.load import Tally, run_labelers, seed
from tests.live import LiveServer, serve
from tests.pg import fresh_database, fresh_postgres_database, suite_uses_postgres


def _rankings(server: LiveServer) -> int:
    with server.session() as session:
        return session.scalar(select(func.count()).select_from(Ranking)) or 0


def _wait_for(condition: Any, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@contextmanager
def _empty_database(folder: Path, name: str) -> Iterator[str]:
    """A new database without any table (nothing migrated): what a restore starts from on a new machine."""
    if suite_uses_postgres():
        with fresh_postgres_database(name) as url:
            yield url
    else:
        yield f"sqlite:///{folder / f'{name}.db'}"


def _rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order."""
    out = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            keys = list(table.primary_key.columns) or list(table.columns)
            out[table.name] = [tuple(r) for r in conn.execute(select(table).order_by(*keys))]
    return out


def _ranking(r: Ranking) -> tuple[Any, ...]:
    return (r.task_id, r.labeler_id, r.buckets, r.idempotency_key, r.created_at)


@contextmanager
def _snapshot_engine(backup: Path) -> Iterator[Engine]:
    """The snapshot, read without `ranklab restore`."""
    if not suite_uses_postgres():
        engine = create_engine(f"sqlite:///{backup / 'database.sqlite3'}")
        yield engine
        engine.dispose()
        return
    with fresh_postgres_database("rl_snap") as url:
        uri = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        done = subprocess.run(
            ["pg_restore", "--no-owner", f"--dbname={uri}", str(backup / "database.dump")], capture_output=True
        )
        assert done.returncode == 0, done.stderr
        engine = create_engine(url)
        yield engine
        engine.dispose()


def _check_consistent(engine: Engine, settings_window: int) -> None:
    with Session(engine) as session:
        unsubmitted = session.scalar(
            select(func.count())
            .select_from(Ranking)
            .join(Assignment, Assignment.id == Ranking.assignment_id)
            .where(Assignment.status != AssignmentStatus.submitted)
        )
        assert unsubmitted == 0
        held = dict(
            session.execute(
                select(Assignment.task_id, func.count())
                .where(Assignment.status.in_([AssignmentStatus.active, AssignmentStatus.submitted]))
                .group_by(Assignment.task_id)
            ).all()
        )
        for task in session.scalars(select(RankingTask)):
            assert task.slots_taken == held.get(task.id, 0), f"task {task.id}"
        kept = _stored(session)
        aggregates.rebuild(session, window=settings_window)
        _same(_stored(session), kept)
        session.rollback()


def test_backup_under_load_restores_every_table(tmp_path: Path) -> None:
    data = tmp_path / "data"
    model_dir = data / "models" / "sft-backup"
    model_dir.mkdir(parents=True)
    (model_dir / "config.json").write_text("{}")
    (model_dir / "model.safetensors").write_bytes(b"w" * 4096)
    with fresh_database(tmp_path, "rl_live") as url, serve(url, data) as server:
        with server.session() as session:
            session.add(ModelVersion(kind=ModelKind.sft, name="sft-backup", path=str(model_dir)))
        headers = seed(server, n_tasks=400, overlap=1, n_labelers=4)
        tally = Tally()
        load = threading.Thread(
            target=run_labelers,
            args=(server.base_url, headers),
            kwargs={"budget_s": 240, "think_s": 0.1, "tally": tally},
        )
        load.start()
        try:
            _wait_for(lambda: _rankings(server) >= 20, "the load to start")
            before = _rankings(server)
            env = {**os.environ, "RANKLAB_DATABASE_URL": url, "RANKLAB_DATA_DIR": str(data)}
            made = ranklab(["backup", str(tmp_path / "backup")], env)
            assert made.returncode == 0, made.stderr
            assert "backed up" in made.stdout
            after_backup = _rankings(server)
        finally:
            load.join()
        final = _rankings(server)
        assert not tally.unexpected, tally.unexpected[:5]
        with server.session() as session:
            live = {r.id: _ranking(r) for r in session.scalars(select(Ranking))}
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    snapshot_rankings = manifest["tables"]["rankings"]
    assert before <= snapshot_rankings <= after_backup < final, "the backup was not taken under load"
    [model] = manifest["models"]
    assert model["present"] and model["files"] == {"config.json": 2, "model.safetensors": 4096}

    backup = tmp_path / "backup"
    with _empty_database(tmp_path, "rl_restored") as target:
        env = {**os.environ, "RANKLAB_DATABASE_URL": target, "RANKLAB_DATA_DIR": str(data)}
        restored = ranklab(["restore", str(backup)], env)
        assert restored.returncode == 0, restored.stderr
        assert f"({sum(manifest['tables'].values())} rows)" in restored.stdout
        again = ranklab(["restore", str(backup)], env)
        assert again.returncode == 1 and "is not empty" in again.stderr
        restored_engine = make_engine(target)
        try:
            got = _rows(restored_engine)
            with _snapshot_engine(backup) as engine:
                want = _rows(engine)
            assert got.keys() == want.keys()
            for name in want:
                assert got[name] == want[name], f"table {name} differs from the snapshot"
            assert {name: len(rows) for name, rows in got.items()} == {name: manifest["tables"][name] for name in got}
            _check_consistent(restored_engine, server.settings.gold_window)
            with Session(restored_engine) as session:
                for r in session.scalars(select(Ranking)):
                    assert live[r.id] == _ranking(r)
        finally:
            restored_engine.dispose()
