"""Engine and session factory; the request (or the job) owns the transaction."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from functools import lru_cache, partial
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DontWrapMixin
from sqlalchemy.orm import Session, sessionmaker

from app.config import get_settings
from app.errors import InvalidInput

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class UnstorableValue(InvalidInput, DontWrapMixin):
    """A value no database column can hold (a NUL character, an integer beyond 64 bits, NaN in JSON): 422."""


def _refuse_unstorable(
    _conn: Any, _cursor: Any, _statement: str, parameters: Any, _context: Any, _executemany: bool
) -> None:
    """Refuse, the same way on SQLite and PostgreSQL, values that one of them would choke on.

    SQLite raises OverflowError beyond 64 bits and PostgreSQL refuses NUL in text; both would be a 500. Checking
    every statement's parameters covers every route and field, present and future, without anyone remembering.
    """
    _check_values(parameters)


def _check_values(values: Any) -> None:
    for value in values.values() if isinstance(values, Mapping) else values or ():
        if isinstance(value, str):
            if "\x00" in value:
                raise UnstorableValue("text must not contain a NUL character (\\x00)")
        elif type(value) is int:
            if not INT64_MIN <= value <= INT64_MAX:
                raise UnstorableValue(f"the number {value} is out of range (at most 64 bits)")
        elif isinstance(value, list | tuple | Mapping):  # executemany rows, arrays
            _check_values(value)


def _json_serializer(value: Any) -> str:
    """JSON for JSON columns: no NaN or Infinity (PostgreSQL refuses them) and no NUL (jsonb refuses \\u0000)."""
    try:
        text = json.dumps(value, allow_nan=False)
    except ValueError as exc:
        raise UnstorableValue("a number is NaN or infinite, which JSON cannot hold") from exc
    if "\\u0000" in text:
        raise UnstorableValue("text must not contain a NUL character (\\x00)")
    return text


def make_engine(url: str, *, busy_timeout_s: float = 30.0, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout (a write waits that long for the lock)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": busy_timeout_s})
        kwargs.setdefault("json_serializer", _json_serializer)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "before_cursor_execute", _refuse_unstorable)
        event.listen(engine, "connect", partial(_sqlite_pragmas, busy_timeout_ms=int(busy_timeout_s * 1000)))
        # pysqlite's own transaction handling defers BEGIN; take control so SELECTs see one snapshot.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("json_serializer", _json_serializer)
    engine = create_engine(url, **kwargs)
    event.listen(engine, "before_cursor_execute", _refuse_unstorable)
    return engine


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
