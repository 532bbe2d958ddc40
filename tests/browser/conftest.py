"""Browser-test fixtures: a real uvicorn server on its own committed database, and headless Chromium pages.

`live_server` yields a LiveServer(base_url, sessionmaker); data made through `live_server.session()` is committed,
so the server (another thread, other connections) sees it. Reuse these fixtures for any browser test.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import get_session, make_engine
from app.deps import settings_dep
from app.main import create_app
from app.migrate import upgrade

CHROMIUM = os.environ.get("RANKLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


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


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    """uvicorn serving the app in a thread, on a freshly migrated SQLite file of its own."""
    folder = Path(tempfile.mkdtemp(prefix="ranklab-browser-"))
    url = f"sqlite:///{folder / 'browser.db'}"
    upgrade(url, "head")
    engine = make_engine(url)
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    # no random hidden gold: each browser test expects the tasks it seeded (the server is shared by all of them)
    settings = Settings(env="test", database_url=url, data_dir=folder / "data", hidden_gold_share=0.0)
    app = create_app(settings)

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
    yield LiveServer(base_url=f"http://127.0.0.1:{port}", sessions=sessions, settings=settings)
    server.should_exit = True
    thread.join(timeout=10)
    engine.dispose()


@pytest.fixture(scope="session")
def browser():  # type: ignore[no-untyped-def]
    """Headless Chromium (the system one), shared by the session's tests."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server):  # type: ignore[no-untyped-def]
    """A fresh browser context and page (no cookies from other tests); failing pages print their console."""
    context = browser.new_context(base_url=live_server.base_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    pg = context.new_page()
    messages: list[str] = []
    pg.on("console", lambda msg: messages.append(f"{msg.type}: {msg.text}"))
    pg.on("pageerror", lambda exc: messages.append(f"pageerror: {exc}"))
    yield pg
    context.close()
    if any(m.startswith(("error", "pageerror")) for m in messages):
        print("\n".join(messages))


def login(page, username: str, password: str) -> None:  # type: ignore[no-untyped-def]
    """Log in through the real form."""
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
