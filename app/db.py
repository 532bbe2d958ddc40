"""Engine and session factory; the request (or the job) owns the transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager
from functools import lru_cache, partial
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import Depends
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from app.config import get_settings


def make_engine(url: str, *, busy_timeout_s: float = 30.0, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout (a write waits that long for the lock)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": busy_timeout_s})
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", partial(_sqlite_pragmas, busy_timeout_ms=int(busy_timeout_s * 1000)))
        # pysqlite's own transaction handling defers BEGIN; take control so SELECTs see one snapshot.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, *, busy_timeout_ms: int) -> None:
    dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event issue BEGIN
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


@lru_cache
def get_engine() -> Engine:
    """The process-wide engine for the configured database."""
    settings = get_settings()
    return make_engine(settings.sqlalchemy_url, busy_timeout_s=settings.sqlite_busy_timeout_s)


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    """Session factory bound to the process-wide engine."""
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


SessionOpener = Callable[[], AbstractContextManager[Session]]
"""Opens a session in a transaction that ends (commit, or rollback on error) and closes when the block ends."""


async def sessionmaker_dep() -> sessionmaker[Session]:
    """The session factory requests use (tests point it at their own database)."""
    return get_sessionmaker()


Sessions = Annotated[sessionmaker[Session], Depends(sessionmaker_dep)]


async def session_opener(sessions: Sessions) -> SessionOpener:
    """For work that outlives the request's own session, such as a streamed response: each block is its own
    short transaction, so nothing is held open while the response waits on a slow (or vanished) client."""
    return sessions.begin


async def get_session(sessions: Sessions) -> AsyncIterator[Session]:
    """Request-scoped session: commits on success, rolls back on error.

    Async so that FastAPI does not spend a worker-thread hop on opening it (a Session does no I/O until first
    used); the end of the request (commit or rollback, then close) is one hop to a worker thread.
    """
    session = sessions()
    try:
        yield session
    except BaseException:
        with anyio.CancelScope(shield=True):  # a cancelled request still returns its connection
            await anyio.to_thread.run_sync(_finish, session, False)
        raise
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(_finish, session, True)


def _finish(session: Session, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()
