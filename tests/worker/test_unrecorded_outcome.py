"""A job whose ending the database refused to record (SQLite locked by another write, a failover) is recorded by
the worker as soon as the database takes writes again, instead of staying "running" or killing the worker."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

from app.db import make_engine
from app.models import Job, JobKind, JobStatus
from app.services import jobs as job_service
from trainer import worker as worker_module
from trainer.worker import WorkerConfig, work


def _config(settings) -> WorkerConfig:
    return WorkerConfig.from_settings(settings, once=True, device="cpu", db_retry_s=0.05)


def test_outcome_refused_twice_is_recorded_later(sessions, worker_settings, monkeypatch):
    with sessions.begin() as s:
        job_id = job_service.enqueue_job(s, kind=JobKind.export, params={}).id
    real, refusals = worker_module.record_outcome, []

    def flaky(session, ctx, outcome):  # type: ignore[no-untyped-def]
        if len(refusals) < 2:
            refusals.append(outcome)
            raise OperationalError("UPDATE jobs", {}, Exception("database is locked"))
        real(session, ctx, outcome)

    monkeypatch.setattr(worker_module, "record_outcome", flaky)

    def handler(ctx, params):  # type: ignore[no-untyped-def]
        raise RuntimeError("the sampling batch failed")

    ran = work(_config(worker_settings), sessions, worker_settings, handlers={JobKind.export: handler})
    assert ran == 1 and len(refusals) == 2
    with sessions() as s:
        job = s.get(Job, job_id)
        assert job.status == JobStatus.failed and job.error == "RuntimeError: the sampling batch failed"


def test_sqlite_locked_while_the_job_ends(committed_url, worker_settings):
    """The export-lock scenario: another connection holds SQLite's write lock as the job fails and finishes."""
    if not committed_url.startswith("sqlite"):
        pytest.skip("SQLite's write lock; PostgreSQL runs the test above")
    engine = make_engine(committed_url, busy_timeout_s=0.1)
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    with sessions.begin() as s:
        job_id = job_service.enqueue_job(s, kind=JobKind.export, params={}).id
    blocker = sqlite3.connect(committed_url.split("///", 1)[1], isolation_level=None, check_same_thread=False)

    def handler(ctx, params):  # type: ignore[no-untyped-def]
        blocker.execute("BEGIN IMMEDIATE")  # a stuck writer elsewhere (the old export bug)
        threading.Timer(1.0, lambda: blocker.execute("ROLLBACK")).start()
        ctx.log("about to fail")  # refused: locked
        raise AssertionError("unreachable")

    ran = work(_config(worker_settings), sessions, worker_settings, handlers={JobKind.export: handler})
    assert ran == 1
    with sessions() as s:
        job = s.get(Job, job_id)
        assert job.status == JobStatus.failed and "database is locked" in (job.error or "")
    blocker.close()
    engine.dispose()
