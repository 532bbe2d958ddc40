"""A live server per test on a copy of one migrated SQLite file, with an admin to drive the simulator."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.migrate import upgrade
from tests.factories import PASSWORD, Factory
from tests.live import LiveServer, live_server_on

SCREENING_SET_SIZE = 5


@dataclass
class SimServer:
    server: LiveServer
    admin: str
    password: str = PASSWORD

    @property
    def base_url(self) -> str:
        return self.server.base_url


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("simulate-template") / "live.db"
    upgrade(f"sqlite:///{path}", "head")
    return path


@contextmanager
def sim_server_on(migrated_db: Path, folder: Path) -> Iterator[SimServer]:
    """A fresh server (its own database: tests never see each other's labelers or tasks) and an admin account."""
    shutil.copy(migrated_db, folder / "live.db")
    with live_server_on(folder, migrated=True, screening_set_size=SCREENING_SET_SIZE, hidden_gold_share=0.0) as server:
        with server.session() as session:
            admin = Factory(session).admin()
        yield SimServer(server, admin.username)


@pytest.fixture
def sim_server(migrated_db: Path, tmp_path: Path) -> Iterator[SimServer]:
    with sim_server_on(migrated_db, tmp_path) as server:
        yield server
