from fastapi.testclient import TestClient
from sqlalchemy import select

from app.deps import settings_dep
from app.models import LoginAttempt, Role
from app.security import SESSION_COOKIE
from tests.factories import PASSWORD, browser_login, csrf_from


def test_login_page_renders_with_csrf(client):
    page = client.get("/login")
    assert page.status_code == 200
    assert "Log in" in page.text
    assert csrf_from(page.text)
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_login_logout_flow(client, factory):
    user = factory.labeler()
    assert client.get("/", follow_redirects=False).status_code == 303
    csrf = browser_login(client, user)
    home = client.get("/")
    assert home.status_code == 200 and user.username in home.text
    resp = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert resp.status_code == 303
    assert client.get("/", follow_redirects=False).headers["location"].startswith("/login")


def test_wrong_password_shows_error_and_is_recorded(client, factory, db):
    user = factory.labeler()
    page = client.get("/login")
    resp = client.post(
        "/login", data={"username": user.username, "password": "nope-nope", "csrf_token": csrf_from(page.text)}
    )
    assert resp.status_code == 401
    assert "wrong username or password" in resp.text
    attempts = db.scalars(select(LoginAttempt).where(LoginAttempt.username == user.username)).all()
    assert [a.succeeded for a in attempts] == [False]


def test_login_without_csrf_is_rejected(client, factory):
    user = factory.labeler()
    client.get("/login")
    resp = client.post("/login", data={"username": user.username, "password": PASSWORD})
    assert resp.status_code == 403
    assert "CSRF" in resp.text
    assert client.get("/", follow_redirects=False).status_code == 303  # still logged out


def test_logout_with_wrong_csrf_is_rejected(client, factory):
    browser_login(client, factory.labeler())
    resp = client.post("/logout", data={"csrf_token": "forged"})
    assert resp.status_code == 403
    assert client.get("/", follow_redirects=False).status_code == 200  # still logged in


def test_cookie_api_write_needs_csrf_header(client, factory):
    browser_login(client, factory.admin())
    body = {"username": "newbie", "password": "longenough1", "role": "labeler"}
    assert client.post("/api/v1/users", json=body).status_code == 403
    csrf = csrf_from(client.get("/").text)
    assert client.post("/api/v1/users", json=body, headers={"X-CSRF-Token": csrf}).status_code == 201


def test_secure_cookie_behind_https(client):
    resp = client.get("https://testserver/login")
    assert "Secure" in resp.headers["set-cookie"]


def test_secure_cookie_behind_a_tls_proxy(app):
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    with TestClient(ProxyHeadersMiddleware(app, trusted_hosts="*")) as proxied:
        behind_tls = proxied.get("/login", headers={"X-Forwarded-Proto": "https"})
        assert "Secure" in behind_tls.headers["set-cookie"]
        plain = proxied.get("/login")
        assert "Secure" not in plain.headers["set-cookie"]


def test_login_page_warns_when_a_secure_cookie_cannot_reach_the_browser(app, settings):
    app.dependency_overrides[settings_dep] = lambda: settings.model_copy(update={"cookie_secure": True})
    with TestClient(app, base_url="http://ranklab.example.org") as remote:
        assert "RANKLAB_COOKIE_SECURE=false" in remote.get("/login").text
    with TestClient(app, base_url="http://localhost") as local:
        assert 'id="cookie-warning"' not in local.get("/login").text
    with TestClient(app, base_url="https://ranklab.example.org") as tls:
        assert 'id="cookie-warning"' not in tls.get("/login").text


def test_token_flow(client, factory):
    user = factory.user(Role.researcher)
    body = client.post("/api/v1/auth/token", data={"username": user.username, "password": PASSWORD}).json()
    assert set(body) == {"access_token", "token_type", "expires_in"} and body["token_type"] == "bearer"
    assert body["expires_in"] > 0
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    resp = client.get("/api/v1/users", headers=headers)
    assert resp.status_code == 200
    assert user.username in [u["username"] for u in resp.json()]
    assert "set-cookie" not in resp.headers


def test_token_wrong_password_and_bad_token(client, factory):
    user = factory.labeler()
    resp = client.post("/api/v1/auth/token", data={"username": user.username, "password": "wrong-one"})
    assert resp.status_code == 401
    assert resp.json()["detail"] == "wrong username or password"
    bad = client.get("/api/v1/users", headers={"Authorization": "Bearer nonsense"})
    assert bad.status_code == 401
    assert "invalid or expired" in bad.json()["detail"]


def test_failed_logins_are_rate_limited(client, factory, settings):
    user = factory.labeler()
    for _ in range(settings.login_max_failures):
        r = client.post("/api/v1/auth/token", data={"username": user.username, "password": "wrong-one"})
        assert r.status_code == 401
    blocked = client.post("/api/v1/auth/token", data={"username": user.username, "password": PASSWORD})
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    assert "too many failed logins" in blocked.json()["detail"]


def test_browser_login_is_rate_limited_with_the_login_page(client, factory, settings):
    user = factory.labeler()
    for _ in range(settings.login_max_failures):
        csrf = csrf_from(client.get("/login").text)
        assert (
            client.post("/login", data={"username": user.username, "password": "bad", "csrf_token": csrf}).status_code
            == 401
        )
    csrf = csrf_from(client.get("/login").text)
    blocked = client.post("/login", data={"username": user.username, "password": PASSWORD, "csrf_token": csrf})
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert "too many failed logins" in blocked.text and 'name="password"' in blocked.text
    assert client.get("/", follow_redirects=False).status_code == 303  # not logged in


def test_one_client_guessing_many_usernames_is_rate_limited(client, factory, settings):
    names = [factory.labeler().username for _ in range(settings.login_max_failures * 4 + 1)]
    for name in names[:-1]:  # under each name's own limit, but all from one address
        assert client.post("/api/v1/auth/token", data={"username": name, "password": "bad"}).status_code == 401
    blocked = client.post("/api/v1/auth/token", data={"username": names[-1], "password": PASSWORD})
    assert blocked.status_code == 429


def test_suspended_user_cannot_log_in(client, factory):
    from app.models import UserStatus

    user = factory.user(Role.labeler, UserStatus.suspended)
    resp = client.post("/api/v1/auth/token", data={"username": user.username, "password": PASSWORD})
    assert resp.status_code == 401
    assert "suspended" in resp.json()["detail"]


def test_open_redirect_is_refused(client, factory):
    user = factory.labeler()
    page = client.get("/login")
    resp = client.post(
        "/login",
        data={
            "username": user.username,
            "password": PASSWORD,
            "csrf_token": csrf_from(page.text),
            "next": "//evil.example.com",
        },
        follow_redirects=False,
    )
    assert resp.headers["location"] == "/label"  # the default landing (a labeler's is the ranking page)


def test_session_cookie_name(client):
    assert SESSION_COOKIE in client.get("/login").headers["set-cookie"]


def test_navigation_follows_role(client, factory):
    browser_login(client, factory.labeler())
    page = client.get("/").text
    assert 'href="/label"' in page and 'href="/dashboard"' not in page and 'href="/jobs"' not in page


def test_navigation_for_researcher(client, factory):
    browser_login(client, factory.researcher())
    page = client.get("/").text
    for href in ("/label", "/prompts", "/tasks", "/dashboard", "/jobs", "/models"):
        assert f'href="{href}"' in page, href


def test_anonymous_write_is_401_not_403(client):
    resp = client.post("/api/v1/users", json={"username": "x", "password": "y", "role": "labeler"})
    assert resp.status_code == 401
    assert resp.json()["detail"] == "log in first"


def _from_address(app, host: str) -> TestClient:  # type: ignore[no-untyped-def]
    async def asgi(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http":
            scope = {**scope, "client": (host, 50000)}
        await app(scope, receive, send)

    return TestClient(asgi)


def test_a_stranger_cannot_lock_someone_else_out(app, factory, settings):
    """Failures count per username and address: the owner still logs in from their own address."""
    user = factory.labeler()
    with _from_address(app, "203.0.113.7") as stranger, _from_address(app, "198.51.100.2") as owner:
        for _ in range(settings.login_max_failures):
            wrong = stranger.post("/api/v1/auth/token", data={"username": user.username, "password": "wrong-one"})
            assert wrong.status_code == 401
        blocked = stranger.post("/api/v1/auth/token", data={"username": user.username, "password": PASSWORD})
        assert blocked.status_code == 429
        assert (
            owner.post("/api/v1/auth/token", data={"username": user.username, "password": PASSWORD}).status_code == 200
        )
