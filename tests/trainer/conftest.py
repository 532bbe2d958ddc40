"""The trainer's tests never touch a database. CI runs the whole suite twice, on SQLite and on PostgreSQL
(RANKLAB_TEST_DATABASE_URL); these run in the SQLite pass and are skipped, with that reason, in the PostgreSQL one,
where they would only repeat the same computation (the real SmolLM2 conversion alone takes a minute)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get("RANKLAB_TEST_DATABASE_URL", "").startswith("postgresql"):
        return
    skip = pytest.mark.skip(reason="no database involved: runs in the SQLite pass of the suite")
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(skip)
