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


def test_a_refused_secret_key_is_never_printed():
    with pytest.raises(ValidationError) as info:
        Settings(secret_key="hunter2-secret")
    assert "hunter2" not in str(info.value) and "at least 16" in str(info.value)


def test_serve_warns_about_the_development_key_and_trusts_no_proxy_by_default(monkeypatch):
    import uvicorn
    from typer.testing import CliRunner

    import app.cli.core  # noqa: F401 - registers `serve`
    from app.cli import cli
    from app.config import get_settings

    calls: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append(kw))
    monkeypatch.delenv("RANKLAB_SECRET_KEY", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["serve"])
        # docker-compose.yml passes RANKLAB_TRUSTED_PROXIES, empty when unset
        unset = CliRunner().invoke(cli, ["serve", "--forwarded-allow-ips", ""])
        named = CliRunner().invoke(cli, ["serve", "--forwarded-allow-ips", "172.18.0.5"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "anyone can forge" in result.output
    assert unset.exit_code == 0 and named.exit_code == 0, (unset.output, named.output)
    assert [c["proxy_headers"] for c in calls] == [False, False, True]
    assert calls[2]["forwarded_allow_ips"] == "172.18.0.5"
