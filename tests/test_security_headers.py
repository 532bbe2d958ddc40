"""Every response carries the security headers; pages cannot be framed (clickjacking), HSTS over HTTPS only."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.factories import Factory, browser_login

EXPECTED = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _check(resp) -> None:  # type: ignore[no-untyped-def]
    for key, value in EXPECTED.items():
        assert resp.headers.get(key) == value, (resp.request.url, key)
    csp = resp.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp


@pytest.mark.parametrize("path", ["/login", "/healthz", "/api/openapi.json", "/api/docs", "/static/css/ranklab.css"])
def test_public_responses(client: TestClient, path: str) -> None:
    resp = client.get(path)
    _check(resp)
    assert "Strict-Transport-Security" not in resp.headers
    assert "'unsafe-inline'" not in resp.headers["Content-Security-Policy"]  # /api/docs too: Swagger UI is vendored


def test_researcher_action_pages_cannot_be_framed(client: TestClient, factory: Factory) -> None:
    browser_login(client, factory.researcher())
    for path in ("/", "/tasks", "/prompts", "/jobs", "/dashboard/labelers", "/schedules", "/guidelines", "/dashboard"):
        resp = client.get(path, headers={"Accept": "text/html"})
        assert resp.status_code == 200, path
        _check(resp)
        assert 'style="' not in resp.text, f"{path}: an inline style the CSP blocks"


def test_errors_and_unexpected_exceptions_carry_them_too(app: FastAPI, client: TestClient) -> None:
    _check(client.get("/api/v1/tasks"))  # 401

    @app.get("/api/v1/_boom")
    def boom() -> None:
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as c:
        _check(c.get("/api/v1/_boom"))


def test_hsts_over_https(app: FastAPI) -> None:
    with TestClient(app, base_url="https://testserver") as c:
        resp = c.get("/login")
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
