"""Browser-test fixtures: a real uvicorn server on its own committed database, and headless Chromium pages.

`live_server` yields a LiveServer(base_url, sessionmaker); data made through `live_server.session()` is committed,
so the server (another thread, other connections) sees it. Reuse these fixtures for any browser test.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.live import LiveServer, open_transactions, serve

CHROMIUM = os.environ.get("RANKLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    """uvicorn serving the app in a thread, on a freshly migrated SQLite file of its own."""
    folder = Path(tempfile.mkdtemp(prefix="ranklab-browser-"))
    # no random hidden gold: each browser test expects the tasks it seeded (the server is shared by all of them)
    with serve(f"sqlite:///{folder / 'browser.db'}", folder / "data", hidden_gold_share=0.0) as server:
        yield server


@pytest.fixture(autouse=True)
def _live_server_left_nothing_open(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test that used the live server: no pooled connection checked out, no transaction left open."""
    yield
    if "live_server" in request.fixturenames:
        server = request.getfixturevalue("live_server")
        assert open_transactions(server) == [], "the server left a connection or a transaction open"


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
    """A fresh browser context and page (no cookies from other tests); failing pages print their console.

    bypass_csp: Playwright's wait_for_function evaluates strings, which the app's CSP forbids; that the pages
    themselves run under the CSP is test_csp.py's job.
    """
    context = browser.new_context(
        base_url=live_server.base_url, viewport={"width": 1280, "height": 900}, bypass_csp=True
    )
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


@contextmanager
def only_new_tasks(live_server) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Every task open now is closed for the block (and reopened after), so the labelers in the block are served the
    tasks made inside it (the server, and so the task pool, is shared by all browser tests)."""
    from app.models import RankingTask, TaskStatus

    with live_server.session() as s:
        others = [t.id for t in s.scalars(select(RankingTask).where(RankingTask.status == TaskStatus.open))]
        for task_id in others:
            s.get(RankingTask, task_id).status = TaskStatus.complete
    try:
        yield
    finally:
        with live_server.session() as s:
            for task_id in others:
                s.get(RankingTask, task_id).status = TaskStatus.open
