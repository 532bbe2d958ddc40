"""Downloads never hold the database: after each export (API, dashboard links, export job file, a client that
goes away half-way) the next write answers at once, and nothing is left checked out or idle in a transaction.

Real uvicorn, real commits: on the SQLite file of a default install, or on PostgreSQL when the suite runs there.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.models import Role, TaskKind, UserStatus
from app.services import users as user_service
from tests.agreement.helpers import add_ranking, make_task
from tests.factories import csrf_from
from tests.live import LiveServer, open_transactions, serve
from tests.pg import fresh_postgres_database

PASSWORD = "export-sessions-pass"
N_RANKINGS = 60
LONG = "word " * 400  # ~2 kB per output: the pairs export is several MB, more than any socket buffer holds


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    if os.environ.get("RANKLAB_TEST_DATABASE_URL", "").startswith("postgresql"):
        with fresh_postgres_database("rl_export") as url, serve(url, tmp_path / "data") as live:
            yield live
    else:
        with serve(f"sqlite:///{tmp_path / 'ranklab.db'}", tmp_path / "data") as live:
            yield live


@pytest.fixture
def seeded(server: LiveServer) -> LiveServer:
    with server.session() as s:
        user_service.create_user(s, username="admin0", password=PASSWORD, role=Role.admin)
        labeler = user_service.create_user(
            s, username="lab0", password=PASSWORD, role=Role.labeler, status=UserStatus.active
        )
        for n in range(N_RANKINGS):
            task = make_task(s, kind=TaskKind.production, k=9)
            for item in task.items:
                item.completion.text = f"{n}-{item.position} {LONG}"
            add_ranking(s, task=task, user=labeler, order=[[i] for i in range(9)])
    return server


def _token(base: str) -> dict[str, str]:
    resp = httpx.post(f"{base}/api/v1/auth/token", data={"username": "admin0", "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def _write_answers_at_once(server: LiveServer, headers: dict[str, str], name: str) -> None:
    """The write that used to wait 30 s and fail: create a user, within a second."""
    started = time.monotonic()
    resp = httpx.post(
        f"{server.base_url}/api/v1/users",
        json={"username": name, "password": "a-long-password", "role": "labeler"},
        headers=headers,
        timeout=10,
    )
    assert resp.status_code == 201, resp.text
    assert time.monotonic() - started < 2.0
    assert open_transactions(server) == []


@pytest.mark.parametrize("fmt", ["pairs", "rankings"])
def test_api_export_then_write(seeded: LiveServer, fmt: str) -> None:
    headers = _token(seeded.base_url)
    resp = httpx.get(f"{seeded.base_url}/api/v1/export/comparisons?format={fmt}", headers=headers, timeout=60)
    assert resp.status_code == 200
    assert len(resp.text.splitlines()) == N_RANKINGS * (36 if fmt == "pairs" else 1)
    _write_answers_at_once(seeded, headers, f"ann-{fmt}")


def test_dashboard_links_then_write(seeded: LiveServer) -> None:
    with httpx.Client(base_url=seeded.base_url, timeout=60) as browser:
        form = csrf_from(browser.get("/login").text)
        login = browser.post("/login", data={"username": "admin0", "password": PASSWORD, "csrf_token": form})
        assert login.status_code in (200, 303), login.text
        page = browser.get("/dashboard", headers={"accept": "text/html"})
        assert page.status_code == 200
        links = sorted(set(re.findall(r'href="([^"]*/export/comparisons[^"]*)"', page.text)))
        assert len(links) == 2, links
        for link in links:
            got = browser.get(link.replace("&amp;", "&"))
            assert got.status_code == 200 and got.text.count("\n") >= N_RANKINGS
    _write_answers_at_once(seeded, _token(seeded.base_url), "ann-dashboard")


def test_client_leaving_mid_download_then_write(seeded: LiveServer) -> None:
    headers = _token(seeded.base_url)
    with (
        httpx.Client(timeout=60) as client,
        client.stream("GET", f"{seeded.base_url}/api/v1/export/comparisons?format=pairs", headers=headers) as resp,
    ):
        assert resp.status_code == 200
        first = next(resp.iter_bytes(64 * 1024))
        assert first.startswith(b'{"prompt"')
    # the connection is closed with megabytes unsent; the server must not keep anything open for it
    _write_answers_at_once(seeded, headers, "ann-gone")


def test_export_job_file_then_write(seeded: LiveServer) -> None:
    from trainer.worker import WorkerConfig, work

    headers = _token(seeded.base_url)
    job = httpx.post(
        f"{seeded.base_url}/api/v1/jobs", json={"kind": "export", "params": {"format": "rankings"}}, headers=headers
    )
    assert job.status_code == 201, job.text
    work(WorkerConfig.from_settings(seeded.settings, once=True, device="cpu"), seeded.sessions, seeded.settings)
    got = httpx.get(f"{seeded.base_url}/api/v1/jobs/{job.json()['id']}/file", headers=headers, timeout=60)
    assert got.status_code == 200 and len(got.text.splitlines()) == N_RANKINGS
    _write_answers_at_once(seeded, headers, "ann-job")


def test_sqlite_busy_past_its_timeout_answers_503(tmp_path: Path) -> None:
    """A write that cannot get SQLite's lock in time is a 503 with a sentence (JSON or page), never a plain 500."""
    import sqlite3

    db_file = tmp_path / "busy.db"
    with serve(f"sqlite:///{db_file}", tmp_path / "data", sqlite_busy_timeout_s=0.2) as live:
        with live.session() as s:
            user_service.create_user(s, username="admin0", password=PASSWORD, role=Role.admin)
        headers = _token(live.base_url)
        blocker = sqlite3.connect(db_file, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            body = {"username": "ann", "password": "a-long-password", "role": "labeler"}
            resp = httpx.post(f"{live.base_url}/api/v1/users", json=body, headers=headers, timeout=10)
            assert resp.status_code == 503 and resp.headers["retry-after"] == "5"
            assert "busy" in resp.json()["detail"] and "nothing was saved" in resp.json()["detail"]
            page = httpx.get(f"{live.base_url}/healthz", timeout=10)
            assert page.status_code == 503
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        resp = httpx.post(f"{live.base_url}/api/v1/users", json=body, headers=headers, timeout=10)
        assert resp.status_code == 201, resp.text
        assert open_transactions(live) == []
