"""`ranklab export` as a real subprocess against a fresh SQLite database seeded through the services."""

import json
import os
import subprocess
import sys

from datasets import load_dataset
from sqlalchemy.orm import Session

from app.db import make_engine
from app.migrate import upgrade
from app.models import Role, TaskKind
from app.services.users import create_user
from tests.agreement.helpers import add_ranking, make_task, singletons


def _run(args, env):
    return subprocess.run(
        [sys.executable, "-c", "from trainer.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_export_command_writes_jsonl_that_datasets_reads(tmp_path):
    url = f"sqlite:///{tmp_path / 'export.db'}"
    upgrade(url, "head")
    engine = make_engine(url)
    with Session(engine) as db, db.begin():
        researcher = create_user(db, username="res1", password="a-long-password", role=Role.researcher)
        labeler = create_user(db, username="lab1", password="a-long-password", role=Role.labeler)
        task = make_task(db, kind=TaskKind.gold, k=5)
        add_ranking(db, task=task, user=researcher, order=singletons([0, 1, 2, 3, 4]))
        add_ranking(db, task=task, user=labeler, order=[[0, 1], [2], [3, 4]])
        task_id = task.id
    engine.dispose()
    env = {**os.environ, "RANKLAB_DATABASE_URL": url, "RANKLAB_DATA_DIR": str(tmp_path)}
    out = tmp_path / "pairs.jsonl"
    done = _run(["export", "--format", "pairs", "--output", str(out)], env)
    assert done.returncode == 0, done.stderr
    assert "exported 18 pairs lines" in done.stderr  # 10 strict pairs + 8 (2*1 + 2*2 + 1*2)
    ds = load_dataset("json", data_files=str(out), split="train")
    assert ds.num_rows == 18 and set(ds["task_id"]) == {task_id}
    stdout = _run(["export", "--format", "rankings", "--min-agreement", "0.5"], env)
    rows = [json.loads(line) for line in stdout.stdout.splitlines()]
    assert [r["buckets"] for r in rows] == [[[0], [1], [2], [3], [4]], [[0, 1], [2], [3, 4]]]
    bad = _run(["export", "--exclude-flag", "rude"], env)
    assert bad.returncode == 1 and "unknown flags" in bad.stderr
