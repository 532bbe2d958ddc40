"""Run Alembic programmatically (used by `ranklab migrate` and the test suite)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from app.config import ROOT_DIR


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """Alembic config pointing at migrations/, optionally bound to a URL or an open connection."""
    cfg = Config(str(ROOT_DIR / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT_DIR / "migrations"))
    cfg.attributes["configure_logging"] = False
    if url:
        cfg.attributes["url"] = url
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Upgrade the database to `revision` (default: head)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    """Downgrade the database to `revision` (default: base)."""
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    """The newest revision the code knows (what `ranklab migrate` upgrades to)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
