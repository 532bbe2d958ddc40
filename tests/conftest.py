"""Test set-up: migrate one database per session, run every test in a transaction that is rolled back.

SQLite by default; PostgreSQL when RANKLAB_TEST_DATABASE_URL is set (CI runs both).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from app.config import Settings  # noqa: E402
from app.db import get_session, make_engine  # noqa: E402
from app.deps import settings_dep
from app.main import create_app  # noqa: E402
from app.migrate import downgrade, upgrade  # noqa: E402
from tests.factories import Factory  # noqa: E402

_TMP = Path(tempfile.mkdtemp(prefix="ranklab-tests-"))


def _test_url() -> str:
    return os.environ.get("RANKLAB_TEST_DATABASE_URL") or f"sqlite:///{_TMP / 'test.db'}"


@pytest.fixture(scope="session")
def database_url() -> str:
    return _test_url()


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    """The migrated test database (downgraded to base first, so a reused database starts clean)."""
    downgrade(database_url, "base")
    upgrade(database_url, "head")
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(env="test", database_url=database_url, data_dir=_TMP / "data", login_max_failures=3)


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    """A session inside an outer transaction that is rolled back after the test."""
    connection = engine.connect()
    outer = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        if outer.is_active:
            outer.rollback()
        connection.close()


@pytest.fixture
def app(db: Session, settings: Settings) -> FastAPI:
    application = create_app(settings)

    def _session() -> Iterator[Session]:
        try:
            yield db
            db.commit()  # commits the savepoint only; the outer transaction is rolled back later
        except BaseException:
            db.rollback()
            raise

    application.dependency_overrides[get_session] = _session
    application.dependency_overrides[settings_dep] = lambda: settings
    return application


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture
def factory(db: Session) -> Factory:
    return Factory(db)
