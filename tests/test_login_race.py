"""Issue 22, defect 3: the failed-login limit holds under parallel requests over real HTTP.

Each attempt is counted and decided atomically before the password is checked, so N parallel wrong passwords get
exactly `limit` answers of 401 (the password was checked) and the rest 429 (refused before any check). Runs on the
suite's database kind: a fresh SQLite file, or a fresh PostgreSQL database when RANKLAB_TEST_DATABASE_URL is one.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from app.models import LoginAttempt, Role, UserStatus
from app.services.users import create_user
from tests.live import LiveServer, open_transactions, serve
from tests.pg import fresh_database

LIMIT = 5
ACTIVE = UserStatus.active


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with fresh_database(tmp_path, "rl_live") as url, serve(url, tmp_path / "data", login_max_failures=LIMIT) as live:
        yield live
        assert open_transactions(live) == []


def _parallel_logins(server: LiveServer, attempts: list[tuple[str, str]]) -> Counter[int]:
    """POST every (username, password) to the token endpoint at once; the answers' statuses, counted."""
    start = threading.Barrier(len(attempts))

    def one(attempt: tuple[str, str]) -> int:
        with httpx.Client(base_url=server.base_url, timeout=120) as client:
            start.wait()
            resp = client.post("/api/v1/auth/token", data={"username": attempt[0], "password": attempt[1]})
            if resp.status_code == 429:
                assert int(resp.headers["retry-after"]) > 0 and "too many failed logins" in resp.json()["detail"]
            return resp.status_code

    with ThreadPoolExecutor(len(attempts)) as pool:
        return Counter(pool.map(one, attempts))


def _failures(server: LiveServer) -> int:
    with server.session() as session:
        return session.scalar(select(func.count()).select_from(LoginAttempt).where(LoginAttempt.succeeded.is_(False)))


def test_parallel_wrong_passwords_for_one_user_check_the_password_at_most_limit_times(server: LiveServer) -> None:
    with server.session() as session:
        create_user(session, username="target", password="the-right-password", role=Role.labeler)
    statuses = _parallel_logins(server, [("target", "a-wrong-password")] * 15)
    assert statuses == Counter({401: LIMIT, 429: 15 - LIMIT})
    assert _failures(server) == LIMIT
    # the owner is locked out from this address only for the window; the right password is refused too
    assert _parallel_logins(server, [("target", "the-right-password")]) == Counter({429: 1})


def test_parallel_wrong_passwords_through_one_address_stop_at_four_times_the_limit(server: LiveServer) -> None:
    statuses = _parallel_logins(server, [(f"guess{i}", "a-wrong-password") for i in range(40)])
    assert statuses == Counter({401: 4 * LIMIT, 429: 40 - 4 * LIMIT})
    assert _failures(server) == 4 * LIMIT


def test_a_right_password_in_parallel_with_wrong_ones_logs_in_within_the_limit(server: LiveServer) -> None:
    with server.session() as session:
        create_user(session, username="owner", password="the-right-password", role=Role.labeler, status=ACTIVE)
    attempts = [("owner", "a-wrong-password")] * (LIMIT - 1) + [("owner", "the-right-password")]
    statuses = _parallel_logins(server, attempts)
    assert statuses == Counter({401: LIMIT - 1, 200: 1})
    with server.session() as session:
        succeeded = session.scalar(select(func.count()).select_from(LoginAttempt).where(LoginAttempt.succeeded))
    assert succeeded == 1 and _failures(server) == LIMIT - 1
