"""docker compose cannot run here: parse docker-compose.yml and check services, order and shared settings."""

from __future__ import annotations

from pathlib import Path

import yaml

from app.config import ROOT_DIR


def _compose() -> dict:
    return yaml.safe_load((ROOT_DIR / "docker-compose.yml").read_text())


def test_services_present():
    assert set(_compose()["services"]) == {"postgres", "migrate", "web", "worker"}


def test_dependency_order():
    s = _compose()["services"]
    assert s["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "worker"):
        assert s[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "healthcheck" in s["postgres"] and "pg_isready" in " ".join(s["postgres"]["healthcheck"]["test"])
    assert s["migrate"]["command"] == ["ranklab", "migrate"]
    assert s["migrate"]["restart"] == "no"


def test_shared_database_url_points_at_postgres_service():
    s = _compose()["services"]
    urls = {s[name]["environment"]["RANKLAB_DATABASE_URL"] for name in ("migrate", "web", "worker")}
    assert len(urls) == 1
    url = urls.pop()
    assert url.startswith("postgresql+psycopg://") and "@postgres:5432/" in url
    assert s["postgres"]["environment"]["POSTGRES_DB"] == url.rsplit("/", 1)[1]
    for name in ("migrate", "web", "worker"):
        assert s[name]["environment"]["RANKLAB_ENV"] == "production"


def test_web_and_worker_share_the_data_folder():
    """Models the worker writes and export files it leaves for download must be visible to the web process."""
    s = _compose()["services"]
    data_dir = s["web"]["environment"]["RANKLAB_DATA_DIR"]
    assert s["worker"]["environment"]["RANKLAB_DATA_DIR"] == data_dir
    mounts = {
        name: {v.split(":")[0] for v in s[name]["volumes"] if v.split(":")[1] == data_dir} for name in ("web", "worker")
    }
    assert mounts["web"] and mounts["web"] == mounts["worker"]
    assert mounts["web"] <= set(_compose()["volumes"])


def test_web_runs_several_workers_and_worker_reserves_gpu():
    s = _compose()["services"]
    cmd = s["web"]["command"]
    assert int(cmd[cmd.index("--workers") + 1]) >= 2
    # behind a TLS proxy: Secure cookies by default, and only the named proxy may set X-Forwarded-*
    assert s["web"]["environment"]["RANKLAB_COOKIE_SECURE"] == "${RANKLAB_COOKIE_SECURE:-true}"
    assert cmd[:2] == ["ranklab", "serve"]
    devices = s["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert "postgres" in _compose()["volumes"] or "pgdata" in _compose()["volumes"]


def test_no_proxy_is_trusted_by_default():
    """Unless RANKLAB_TRUSTED_PROXIES names the proxy, no X-Forwarded-For is believed (`ranklab serve` with an
    empty --forwarded-allow-ips turns proxy headers off: tests/test_config.py), in compose and in the image alike."""
    cmd = _compose()["services"]["web"]["command"]
    assert cmd[cmd.index("--forwarded-allow-ips") + 1] == "${RANKLAB_TRUSTED_PROXIES:-}"
    assert "--proxy-headers" not in cmd
    image_cmd = next(line for line in (ROOT_DIR / "Dockerfile").read_text().splitlines() if line.startswith("CMD"))
    assert '"ranklab", "serve"' in image_cmd and "proxy-headers" not in image_cmd and "forwarded" not in image_cmd


def test_dockerfile_copies_what_the_services_need():
    text = (ROOT_DIR / "Dockerfile").read_text()
    for path in ("app", "trainer", "migrations", "templates", "alembic.ini", "pyproject.toml"):
        assert f"COPY {path}" in text or f" {path} " in text, path
    assert Path(ROOT_DIR / "alembic.ini").exists()
