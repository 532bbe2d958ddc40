"""`ranklab models add` and `ranklab worker --once` as real subprocesses; the web side never imports torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from app.migrate import upgrade
from app.models import Job, JobKind, JobStatus, ModelVersion, RankingTask, Split
from app.services import jobs as job_service
from app.services.prompts import get_or_create_prompt


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from trainer.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_models_add_then_worker_once_runs_a_sampling_job(tmp_path, tiny_model_dir):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {**os.environ, "RANKLAB_DATABASE_URL": url, "RANKLAB_DATA_DIR": str(tmp_path / "data")}
    upgrade(url)
    bad = _cli(["models", "add", str(tmp_path), "--kind", "sft"], env)
    assert bad.returncode == 1 and "no config.json" in bad.stderr
    added = _cli(["models", "add", str(tiny_model_dir), "--kind", "sft", "--name", "tiny"], env)
    assert added.returncode == 0, added.stderr
    assert "registered sft model 'tiny' as version 1" in added.stdout
    engine = create_engine(url)
    with Session(engine) as session:  # copied into the data folder, file for file; the original is left alone
        copied = Path(session.get(ModelVersion, 1).path)
    assert copied.parent == tmp_path / "data" / "models" and copied.name.startswith("sft-tiny-")
    originals = sorted(p.relative_to(tiny_model_dir) for p in tiny_model_dir.rglob("*") if p.is_file())
    assert sorted(p.relative_to(copied) for p in copied.rglob("*") if p.is_file()) == originals
    assert all((copied / rel).read_bytes() == (tiny_model_dir / rel).read_bytes() for rel in originals)
    in_place = _cli(["models", "add", str(tiny_model_dir), "--kind", "policy", "--in-place", "--parent", "1"], env)
    assert in_place.returncode == 0, in_place.stderr
    with Session(engine) as session:
        assert session.get(ModelVersion, 2).path == str(tiny_model_dir.resolve())
    orphan = _cli(["models", "add", str(tiny_model_dir), "--kind", "policy", "--parent", "99"], env)
    assert orphan.returncode == 1 and "parent model 99 does not exist" in orphan.stderr
    assert len(list((tmp_path / "data" / "models").iterdir())) == 1  # the refused copy was removed
    with Session(engine) as session, session.begin():
        for text in ("hello there", "what is two plus two?"):
            get_or_create_prompt(session, text=text, split=Split.train)
        job_id = job_service.enqueue_job(
            session, kind=JobKind.sample, params={"split": "train", "k": 4, "max_new_tokens": 4}
        ).id
    wrong = _cli(["worker", "--once", "--kinds", "train_gpt5", "--device", "cpu"], env)
    assert wrong.returncode == 2 and "'train_gpt5' is not a valid JobKind" in " ".join(wrong.stderr.split())
    ran = _cli(["worker", "--once", "--device", "cpu", "--kinds", "sample"], env)
    assert ran.returncode == 0, ran.stderr
    assert "ran 1 job(s)" in ran.stdout
    with Session(engine) as session:
        assert session.get(Job, job_id).status == JobStatus.succeeded
        assert len(session.scalars(select(RankingTask).where(RankingTask.job_id == job_id)).all()) == 2
    engine.dispose()


def test_web_app_and_cli_registration_stay_torch_free():
    code = (
        "import sys; import app.main, app.cli.models, app.routes.jobs, app.services.jobs, app.services.schedules; "
        "from app.cli import register_commands; register_commands(); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'trainer')]; "
        "assert not bad, bad"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
