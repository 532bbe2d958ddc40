"""Test set-up: migrate one database per session, run every test in a transaction that is rolled back.

SQLite by default; PostgreSQL when RANKLAB_TEST_DATABASE_URL is set (CI runs both).
"""

from __future__ import annotations

import os
import tempfile
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from app.config import Settings  # noqa: E402
from app.db import make_engine  # noqa: E402
from app.deps import get_session, session_opener, settings_dep  # noqa: E402
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


class SessionUseGuard:
    """Records any use of the test's session by the app outside a request's session scope.

    Requests see the test's `db` session (rolled back at the end) in place of their own. The real app closes a
    request's session before a streamed body runs, so a body that still used it would open a transaction that
    nothing ends (the export bug that locked SQLite). Here such a use is any statement or transaction begun on a
    thread other than the test's own while no request scope (or `session_opener` block) is open.
    """

    def __init__(self, db: Session) -> None:
        self.db, self.depth, self.misuses = db, 0, []  # type: ignore[var-annotated]
        self.test_thread = threading.get_ident()
        event.listen(db, "do_orm_execute", self._used)
        event.listen(db, "after_begin", self._used)

    def _used(self, *args: object) -> None:
        if self.depth == 0 and threading.get_ident() != self.test_thread:
            self.misuses.append("".join(traceback.format_stack(limit=12)))

    @contextmanager
    def scope(self) -> Iterator[Session]:
        self.depth += 1
        try:
            yield self.db
        finally:
            self.depth -= 1

    def close(self) -> None:
        event.remove(self.db, "do_orm_execute", self._used)
        event.remove(self.db, "after_begin", self._used)


@pytest.fixture
def app(db: Session, settings: Settings) -> Iterator[FastAPI]:
    application = create_app(settings)
    guard = SessionUseGuard(db)

    def _session() -> Iterator[Session]:
        with guard.scope():
            try:
                yield db
                db.commit()  # commits the savepoint only; the outer transaction is rolled back later
            except BaseException:
                db.rollback()
                raise

    @contextmanager
    def _transaction() -> Iterator[Session]:
        with guard.scope(), db.begin_nested():
            yield db

    application.dependency_overrides[get_session] = _session
    application.dependency_overrides[session_opener] = lambda: _transaction
    application.dependency_overrides[settings_dep] = lambda: settings
    yield application
    guard.close()
    assert not guard.misuses, "the app used a request's session after the request ended:\n" + guard.misuses[0]


@pytest.fixture(autouse=True)
def _no_connection_left_checked_out(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test with the database: every pooled connection is back (the test's own included)."""
    yield
    if "db" in request.fixturenames:
        engine = request.getfixturevalue("engine")
        assert engine.pool.checkedout() == 0, "a connection was left checked out of the pool"


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture
def factory(db: Session) -> Factory:
    return Factory(db)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with its tokenizer, in HF format (built once per test session)."""
    from trainer.common.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama", seed=0)
