"""`ranklab demo`'s set-up steps: accounts once, MT-Bench prompts once, one pending sampling job."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import make_engine
from app.migrate import upgrade
from app.models import JobKind, Prompt, Role, User, UserStatus
from app.services import demo as demo_service
from app.services.users import authenticate


def test_demo_accounts_are_created_once_with_working_passwords(db):
    first = demo_service.create_demo_accounts(db)
    assert [a.username for a in first] == [name for name, _ in demo_service.DEMO_ACCOUNTS]
    assert all(a.password for a in first)
    labeler = next(a for a in first if a.role == Role.labeler)
    assert db.scalar(select(User).where(User.username == labeler.username)).status == UserStatus.active
    user = authenticate(
        db, username=labeler.username, password=labeler.password, client="test", max_failures=5, window_s=60
    )
    assert user.username == labeler.username
    again = demo_service.create_demo_accounts(db)
    assert all(a.password is None for a in again)


def test_mtbench_prompts_import_once_and_sampling_job_is_not_duplicated(db):
    ids, created = demo_service.import_mtbench_prompts(db)
    assert len(ids) == 80 and created == 80
    first = db.get(Prompt, ids[0])
    assert first.meta["dataset"] == "mt-bench" and first.meta["question"] == 1 and "Hawaii" in first.text
    assert first.meta["followups"] == ["Rewrite your previous response. Start every sentence with the letter A."]
    assert demo_service.import_mtbench_prompts(db) == (ids, 0)
    job, is_new = demo_service.queue_demo_sampling(db, prompt_ids=ids)
    assert is_new and job.kind == JobKind.sample and job.params["prompt_ids"] == ids and job.params["k"] == 4
    assert job.params["followups"] is True  # the second turns become two-turn conversations in the same job
    again, is_new = demo_service.queue_demo_sampling(db, prompt_ids=ids)
    assert again.id == job.id and not is_new


@pytest.mark.slow
def test_demo_command_end_to_end_and_again(tmp_path):
    """`ranklab demo` as a real process, twice: the second run creates nothing and prints no password."""
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    upgrade(url)
    env = {**os.environ, "RANKLAB_DATABASE_URL": url, "RANKLAB_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200"}

    def demo() -> str:
        done = subprocess.run(
            [sys.executable, "-c", "from trainer.cli import main; main()", "demo"],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    first = demo()
    printed = dict(re.findall(r"(demo-[a-z0-9]+)\s*│\s*\w+\s*│\s*(\S{16})\s*│", first))
    assert set(printed) == {name for name, _ in demo_service.DEMO_ACCOUNTS}
    assert "MT-Bench prompts: 80 imported, 0 already there" in first
    assert "SFT model: smollm2-135m-instruct (version 1)" in first
    assert "queued sampling job 1 (80 prompts)" in first
    second = demo()
    assert not any(password in second for password in printed.values())
    assert second.count("already existed") == len(printed)
    assert "MT-Bench prompts: 0 imported, 80 already there" in second
    assert "SFT model: smollm2-135m-instruct (version 1)" in second
    assert "already waiting: sampling job 1" in second
    engine = make_engine(url)
    with Session(engine) as db:  # the printed passwords are the real ones
        for name, password in printed.items():
            user = authenticate(db, username=name, password=password, client="test", max_failures=5, window_s=60)
            assert user.username == name
    engine.dispose()
