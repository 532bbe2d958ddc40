"""Jobs that meet a broken disk fail with the reason, through the real worker: a model folder that went missing
and a data folder the worker cannot write to. (A worker killed mid-job: test_sigkill_resume.py.)"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.models import JobKind, JobStatus, ModelKind, ModelVersion, RankingTask, Split
from app.services import model_registry
from app.services.prompts import get_or_create_prompt
from tests.worker.conftest import fast_settings, run_job_once


def test_a_missing_model_folder_fails_the_job(
    sessions: sessionmaker[Session], worker_settings: Settings, tiny_model_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "moved-away"
    shutil.copytree(tiny_model_dir, folder)
    with sessions.begin() as session:
        get_or_create_prompt(session, text="Say something.", split=Split.train)
        model = model_registry.register_model(session, kind=ModelKind.sft, name="gone", path=folder)
    shutil.rmtree(folder)
    job = run_job_once(
        sessions, worker_settings, JobKind.sample, {"policy_version": model.id, "split": "train", "max_new_tokens": 4}
    )
    assert job.status == JobStatus.failed
    assert job.error and "model folder not found" in job.error and str(folder) in job.error
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(RankingTask)) == 0


def _unwritable(folder: Path) -> Path:
    """A data folder the worker cannot write into: read-only for a normal user; root writes anywhere, so there a
    file stands where the folder should be."""
    if os.geteuid() == 0:
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.write_text("not a folder")
    else:
        folder.mkdir(parents=True)
        folder.chmod(0o500)
    return folder


def test_an_unwritable_data_folder_fails_the_job_with_the_reason(
    sessions: sessionmaker[Session], committed_url: str, tmp_path: Path
) -> None:
    data_dir = _unwritable(tmp_path / "data")
    try:
        job = run_job_once(sessions, fast_settings(committed_url, data_dir), JobKind.export, {})
    finally:
        if data_dir.is_dir():
            data_dir.chmod(0o700)
    assert job.status == JobStatus.failed
    reason = job.error or ""
    assert any(word in reason for word in ("Permission denied", "Not a directory", "File exists")), reason
    assert str(data_dir) in reason
    assert job.log_tail and str(data_dir) in job.log_tail  # the traceback's last lines, for the jobs page
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(ModelVersion)) == 0
