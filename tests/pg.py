"""Throw-away PostgreSQL databases on the local server, for tests that need real commits or races."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

SERVER_URL = os.environ.get("RANKLAB_TEST_POSTGRES_SERVER", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
NAMESPACE = os.environ.get("RANKLAB_TEST_POSTGRES_NAMESPACE", "")
"""Put before every throw-away database's name, so runs that share a server keep to their own names."""


@contextmanager
def fresh_postgres_database(prefix: str = "rl_tmp") -> Iterator[str]:
    """Create an empty database, yield its URL, drop it afterwards."""
    name = f"{NAMESPACE}{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(SERVER_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def suite_uses_postgres() -> bool:
    """Whether the suite runs on PostgreSQL (RANKLAB_TEST_DATABASE_URL), else SQLite."""
    return os.environ.get("RANKLAB_TEST_DATABASE_URL", "").startswith("postgresql")


@contextmanager
def fresh_database(folder: Path, prefix: str = "rl_tmp") -> Iterator[str]:
    """A fresh, migrated database of the suite's kind: a PostgreSQL database (dropped afterwards), or a SQLite file in
    `folder`."""
    from app.migrate import upgrade

    if suite_uses_postgres():
        with fresh_postgres_database(prefix) as url:
            upgrade(url)
            yield url
        return
    url = f"sqlite:///{Path(folder) / f'{prefix}.db'}"
    upgrade(url)
    yield url
