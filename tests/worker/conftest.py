"""Worker tests: jobs that really commit need their own database (a fresh SQLite file, or PostgreSQL)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import make_engine
from app.migrate import upgrade
from app.models import Job, JobKind
from app.services import jobs as job_service
from tests.pg import fresh_database, fresh_postgres_database

DEVICE_POLICY_DIR = Path(__file__).resolve().parents[1] / "trainer" / "device_policy"


def fast_settings(url: str, data_dir: Path, **overrides: object) -> Settings:
    """Settings with short worker timings, for tests."""
    base: dict[str, object] = {
        "env": "test",
        "database_url": url,
        "data_dir": data_dir,
        "worker_heartbeat_s": 0.2,
        "worker_stale_after_s": 2.0,
        "worker_poll_s": 0.05,
        "scheduler_lease_s": 5.0,
    }
    return Settings(**{**base, **overrides})  # type: ignore[arg-type]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database (dropped afterwards)."""
    with fresh_postgres_database("rl_worker") as url:
        upgrade(url)
        yield url


@pytest.fixture
def committed_url(tmp_path: Path) -> Iterator[str]:
    """A fresh migrated database: PostgreSQL when the suite runs on it, else a SQLite file."""
    with fresh_database(tmp_path, "rl_worker") as url:
        yield url


@pytest.fixture
def committed_engine(committed_url: str) -> Iterator[Engine]:
    engine = make_engine(committed_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(committed_engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=committed_engine, expire_on_commit=False)


@pytest.fixture
def worker_settings(committed_url: str, tmp_path: Path) -> Settings:
    return fast_settings(committed_url, tmp_path / "data")


def run_job_once(sessions: sessionmaker[Session], settings: Settings, kind: JobKind, params: dict[str, Any]) -> Job:
    """Queue one job, let a `--once` CPU worker with the real handlers work the queue, return the job as it ended."""
    from trainer.worker import WorkerConfig, work

    with sessions.begin() as session:
        job_id = job_service.enqueue_job(session, kind=kind, params=params).id
    work(WorkerConfig.from_settings(settings, once=True, device="cpu"), sessions, settings)
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


@pytest.fixture
def gpu_like_ranks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The torchrun ranks a test starts get the device policy of a GPU run (tests/trainer/device_policy): their
    collectives refuse CPU tensors as NCCL does. Returns the file where each rank reports what its collectives saw."""
    log = tmp_path / "device-policy.jsonl"
    monkeypatch.setenv("RANKLAB_TEST_BACKEND_DEVICE", "cuda")
    monkeypatch.setenv("RANKLAB_TEST_DEVICE_POLICY_LOG", str(log))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(DEVICE_POLICY_DIR), os.environ.get("PYTHONPATH")]))
    )
    return log
