"""Load without loss, and the database going away under it, on a live uvicorn server (tests/live.py).

Labelers rank concurrently over real HTTP with lost responses, retries and duplicate submits (tests/labeling/load.py).
Afterwards the stored rankings are exactly the acknowledged submits, every task holds exactly its overlap and no
ranking is duplicated. When the database goes away mid-load (PostgreSQL refuses connections and drops the live
ones; SQLite's write lock is held by another process) the app answers 503 with Retry-After, never another 5xx,
and recovers without a restart: the clients' retries then finish the work with nothing lost.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.labeling.load import Tally, lost_or_extra, run_labelers, seed
from tests.live import LiveServer, open_transactions, serve
from tests.pg import SERVER_URL, fresh_postgres_database

N_TASKS, OVERLAP, N_LABELERS = 6, 3, 6
DOWN_S = 2.0


@contextmanager
def live(backend: str, tmp_path: Path) -> Iterator[LiveServer]:
    # fixed overlaps (no hidden gold, no adaptive overlap: a task reopened after a labeler heard 204 would stay short)
    settings = {"hidden_gold_share": 0.0, "adaptive_overlap_max": OVERLAP, "sqlite_busy_timeout_s": 0.2}
    if backend == "postgresql":
        with fresh_postgres_database("rl_load") as url, serve(url, tmp_path / "data", **settings) as server:
            yield server
    else:
        with serve(f"sqlite:///{tmp_path / 'load.db'}", tmp_path / "data", **settings) as server:
            yield server


def _check(server: LiveServer, tally: Tally) -> None:
    assert not tally.unexpected, tally.unexpected[:10]
    with server.session() as session:
        assert lost_or_extra(session, tally, n_tasks=N_TASKS, overlap=OVERLAP) == []
    assert open_transactions(server) == []


@pytest.mark.postgres
def test_concurrent_labelers_lose_nothing(tmp_path: Path) -> None:
    with live("postgresql", tmp_path) as server:
        headers = seed(server, n_tasks=N_TASKS, overlap=OVERLAP, n_labelers=N_LABELERS)
        tally = run_labelers(server.base_url, headers, budget_s=60)
        _check(server, tally)
        assert set(tally.statuses) <= {200, 201, 204}, tally.statuses
        assert tally.statuses[200] > 0  # replays happened: duplicate submits and retries of lost responses


def _down_for_a_while(probed: threading.Event) -> None:
    """The outage lasts DOWN_S, and at least until the test's probe has been answered (a loaded machine can take
    longer than DOWN_S to answer it, and must still be answering from inside the outage)."""
    started = time.monotonic()
    probed.wait(timeout=30)
    time.sleep(max(0.0, DOWN_S - (time.monotonic() - started)))


def _postgres_goes_away(server: LiveServer, is_down: threading.Event, probed: threading.Event) -> Callable[[], None]:
    """Refuse new connections to the server's database and end the open ones, for DOWN_S seconds."""
    name = make_url(server.settings.database_url).database
    admin = create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")

    def fault() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            # A connection still starting when the ALTER committed can show up in pg_stat_activity a moment after
            # the first sweep (seen on a loaded machine): end backends until none is left.
            alive = text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"
            )
            deadline = time.monotonic() + 10
            while conn.execute(alive, {"n": name}).all() and time.monotonic() < deadline:
                time.sleep(0.05)
            is_down.set()
            _down_for_a_while(probed)
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()

    return fault


def _sqlite_is_locked(server: LiveServer, is_down: threading.Event, probed: threading.Event) -> Callable[[], None]:
    """Another process holds SQLite's write lock for DOWN_S seconds (every app transaction needs it)."""
    path = make_url(server.settings.database_url).database or ""

    def fault() -> None:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        is_down.set()
        _down_for_a_while(probed)
        conn.execute("ROLLBACK")
        conn.close()

    return fault


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_the_database_going_away_mid_load(backend: str, tmp_path: Path) -> None:
    with live(backend, tmp_path) as server:
        headers = seed(server, n_tasks=N_TASKS, overlap=OVERLAP, n_labelers=N_LABELERS)
        is_down, probed = threading.Event(), threading.Event()
        fault = (_postgres_goes_away if backend == "postgresql" else _sqlite_is_locked)(server, is_down, probed)
        tally, probes = Tally(), []

        def mid_load() -> None:
            while len(tally.acks) < 3:  # some rankings are in
                time.sleep(0.01)
            down = threading.Thread(target=fault)
            down.start()
            assert is_down.wait(timeout=30), "the fault never took the database away"
            time.sleep(0.2)  # a plain request while it is down sees what the clients see
            try:
                probes.append(httpx.get(f"{server.base_url}/api/v1/labeling/stats", headers=headers[0], timeout=10))
            finally:
                probed.set()
            down.join()

        with ThreadPoolExecutor(1) as pool:
            outage = pool.submit(mid_load)
            run_labelers(server.base_url, headers, budget_s=60, seed_=1, think_s=0.4, tally=tally)
            outage.result(timeout=30)
        assert probes[0].status_code == 503 and probes[0].headers["Retry-After"], probes[0].text
        assert "nothing was saved" in probes[0].json()["detail"]
        assert tally.statuses[503] > 0, tally.statuses  # the load ran into it
        assert set(tally.statuses) <= {200, 201, 204, 503}, tally.statuses
        _check(server, tally)
        health = httpx.get(f"{server.base_url}/healthz", timeout=10)
        assert health.status_code == 200, health.text  # recovered without a restart
