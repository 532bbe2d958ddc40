"""A real uvicorn server on its own committed SQLite database, for tests that talk HTTP (browser, simulator).

`live_server_on(folder, **settings)` is a context manager yielding a LiveServer(base_url, sessions, settings);
data made through `live_server.session()` is committed, so the server (another thread, other connections) sees it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import get_session, make_engine
from app.deps import settings_dep
from app.main import create_app
from app.migrate import upgrade


@dataclass
class LiveServer:
    base_url: str
    sessions: sessionmaker[Session]
    settings: Settings

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
def live_server_on(
    folder: Path, *, db_name: str = "live.db", migrated: bool = False, **settings: Any
) -> Iterator[LiveServer]:
    """uvicorn serving the app in a thread, on SQLite file `folder/db_name` (migrated here unless `migrated`)."""
    url = f"sqlite:///{folder / db_name}"
    if not migrated:
        upgrade(url, "head")
    engine = make_engine(url)
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    config = Settings(env="test", database_url=url, data_dir=folder / "data", **settings)
    app = create_app(config)

    def _session() -> Iterator[Session]:
        session = sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    app.dependency_overrides[get_session] = _session
    app.dependency_overrides[settings_dep] = lambda: config
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
        yield LiveServer(base_url=f"http://127.0.0.1:{port}", sessions=sessions, settings=config)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()
