import pytest
from pydantic import ValidationError

from app.config import DEV_SECRET_KEY, Settings


def test_default_database_is_sqlite_in_data_dir(tmp_path):
    s = Settings(data_dir=tmp_path, database_url="")
    assert s.sqlalchemy_url == f"sqlite:///{tmp_path / 'ranklab.db'}"


def test_production_refuses_development_secret():
    with pytest.raises(ValidationError, match="RANKLAB_SECRET_KEY"):
        Settings(env="production", secret_key=DEV_SECRET_KEY)
    assert Settings(env="production", secret_key="x" * 40).env == "production"


def test_short_secret_refused():
    with pytest.raises(ValidationError, match="at least 16"):
        Settings(secret_key="short")


def test_environment_prefix(monkeypatch):
    monkeypatch.setenv("RANKLAB_LEASE_MINUTES", "7")
    monkeypatch.setenv("RANKLAB_DATABASE_URL", "postgresql+psycopg://u@h/db")
    s = Settings()
    assert s.lease_minutes == 7
    assert s.sqlalchemy_url == "postgresql+psycopg://u@h/db"


def test_invalid_value_is_refused(monkeypatch):
    monkeypatch.setenv("RANKLAB_LEASE_MINUTES", "0")
    with pytest.raises(ValidationError, match="lease_minutes"):
        Settings()
