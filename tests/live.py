"""A real uvicorn server over a real, committed database, for tests that need real HTTP and real transactions.

`serve(url, data_dir)` migrates the database at `url`, serves the app on a free port in a thread with the app's own
request-session handling, and yields a LiveServer. `open_transactions(server)` lists what the server left open:
connections checked out of its pool and, on PostgreSQL, sessions idle in a transaction; on SQLite, a held write lock.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import make_engine
from app.deps import sessionmaker_dep, settings_dep
from app.main import create_app
from app.migrate import upgrade


@dataclass
class LiveServer:
    base_url: str
    sessions: sessionmaker[Session]
    settings: Settings
    engine: Engine = field(repr=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose work is committed at the end of the block."""
        with self.sessions.begin() as session:
            yield session


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(url: str, data_dir: Path, **settings_overrides: Any) -> Iterator[LiveServer]:
    """uvicorn serving the app in a thread on the (migrated) database at `url`."""
    upgrade(url, "head")
    settings = Settings(env="test", database_url=url, data_dir=data_dir, **settings_overrides)
    engine = make_engine(url, busy_timeout_s=settings.sqlite_busy_timeout_s)
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    app = create_app(settings)
    app.dependency_overrides[sessionmaker_dep] = lambda: sessions
    app.dependency_overrides[settings_dep] = lambda: settings
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the live uvicorn server did not start")
        time.sleep(0.05)
    try:
        yield LiveServer(base_url=f"http://127.0.0.1:{port}", sessions=sessions, settings=settings, engine=engine)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()


def open_transactions(server: LiveServer, *, wait_s: float = 5.0) -> list[str]:
    """What the server still holds open, waiting up to `wait_s` for in-flight work to finish; [] when clean."""
    deadline = time.monotonic() + wait_s
    while True:
        found = _held(server)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _held(server: LiveServer) -> list[str]:
    found = []
    checked_out = server.engine.pool.checkedout()  # type: ignore[attr-defined]
    if checked_out:
        found.append(f"{checked_out} connection(s) checked out of the pool")
    url = make_url(server.settings.database_url)
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(url.database or "", timeout=0, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            found.append(f"SQLite write lock held ({exc})")
        finally:
            conn.close()
    else:
        probe = create_engine(url)
        with probe.connect() as conn:
            idle = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
        probe.dispose()
        if idle:
            found.append(f"{idle} PostgreSQL session(s) idle in transaction")
    return found


@contextmanager
def live_server_on(
    folder: Path, *, db_name: str = "live.db", migrated: bool = False, **settings: Any
) -> Iterator[LiveServer]:
    """`serve` on the SQLite file `folder/db_name`, data under `folder/data` (`migrated` is accepted for callers
    that migrated already: migrating again is a no-op)."""
    with serve(f"sqlite:///{folder / db_name}", folder / "data", **settings) as server:
        yield server
