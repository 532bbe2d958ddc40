"""Migrations go up and down on empty SQLite and PostgreSQL databases and match the models exactly."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from app.db import make_engine
from app.migrate import downgrade, upgrade
from app.models import Base
from tests.pg import fresh_postgres_database


def _check_roundtrip(url: str) -> None:
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
            assert diff == [], f"models and migrations differ: {diff}"
            tables = set(inspect(conn).get_table_names())
        assert set(Base.metadata.tables) <= tables
        downgrade(url, "base")
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == {"alembic_version"}
        upgrade(url)  # and up again
        with engine.connect() as conn:
            assert set(Base.metadata.tables) <= set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_sqlite_upgrade_check_downgrade(tmp_path):
    _check_roundtrip(f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
def test_postgres_upgrade_check_downgrade():
    with fresh_postgres_database("rl_migr") as url:
        _check_roundtrip(url)


def test_sqlite_pragmas(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    engine.dispose()


def _queue_every_registered_kind(url: str) -> None:
    """Adding a job kind is a registry entry (JobKind + JOB_KINDS + trainer/jobs), never a migration: every kind the
    web side knows, and a kind no migration has heard of, can be queued on a database migrated to head."""
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from app.models import Job, JobKind, Schedule
    from app.schemas.jobs import JOB_KINDS

    upgrade(url)
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            for kind in JOB_KINDS:
                session.add(Job(kind=kind, params={}))
                session.add(Schedule(name=f"s-{kind.value}", kind=kind, params={}, cron="0 * * * *"))
            session.commit()
            stored = {str(k) for k in session.scalars(text("SELECT kind FROM jobs"))}
            assert stored == {k.value for k in JOB_KINDS}
            assert set(JOB_KINDS) == set(JobKind)
        with engine.begin() as conn:  # a kind that only a future registry knows
            conn.execute(
                text(
                    "INSERT INTO jobs (kind, params, status, progress, metrics, log_tail, attempts, "
                    "max_attempts, cancel_requested, created_at) VALUES ('train_future', '{}', 'queued', 0, "
                    "'[]', '', 0, 3, false, CURRENT_TIMESTAMP)"
                )
            )
    finally:
        engine.dispose()


def test_sqlite_queues_every_registered_job_kind(tmp_path):
    _queue_every_registered_kind(f"sqlite:///{tmp_path / 'k.db'}")


@pytest.mark.postgres
def test_postgres_queues_every_registered_job_kind():
    with fresh_postgres_database("rl_kinds") as url:
        _queue_every_registered_kind(url)


def _existing_prompts_become_conversations(url: str) -> None:
    """A database from before conversations: its prompts become one user message each, with the same hash, and a
    prompt imported afterwards with the same text is still recognised as a duplicate."""
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from app.models import Prompt
    from app.services.prompts import content_hash, get_or_create_prompt

    upgrade(url, "5d1f0a7c2b3e")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO prompts (text, content_hash, source, split, metadata, created_at) VALUES "
                    "(:t, :h, 'import', 'train', '{}', CURRENT_TIMESTAMP)"
                ),
                {"t": 'Say "hi"\nin two lines', "h": content_hash('Say "hi"\nin two lines')},
            )
        upgrade(url)
        with Session(engine) as session:
            [prompt] = session.scalars(select(Prompt)).all()
            assert prompt.messages == [{"role": "user", "content": 'Say "hi"\nin two lines'}]
            again, created = get_or_create_prompt(session, text='say "HI" in two lines')
            assert not created and again.id == prompt.id
    finally:
        engine.dispose()


def test_sqlite_existing_prompts_become_conversations(tmp_path):
    _existing_prompts_become_conversations(f"sqlite:///{tmp_path / 'c.db'}")


@pytest.mark.postgres
def test_postgres_existing_prompts_become_conversations():
    with fresh_postgres_database("rl_conv") as url:
        _existing_prompts_become_conversations(url)
