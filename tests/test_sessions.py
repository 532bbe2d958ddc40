"""Sessions that end: logout, a password change, a status or role change and an admin's sign-out revoke every
cookie and token the user held, at once."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import Assignment, AssignmentStatus, Role, UserStatus
from app.security import SESSION_COOKIE
from app.services import users as user_service
from tests.factories import PASSWORD, Factory, browser_login, csrf_from, make_task, token_headers

ME = "/api/v1/labeling/stats"


def test_logout_revokes_the_old_cookie_and_tokens(app, client: TestClient, factory: Factory) -> None:
    user = factory.labeler()
    csrf = browser_login(client, user)
    stolen = client.cookies.get(SESSION_COOKIE)
    token = token_headers(client, user)
    assert client.get(ME).status_code == 200
    assert client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    with TestClient(app) as other:
        other.cookies.set(SESSION_COOKIE, stolen)
        assert other.get(ME).status_code == 401
        page = other.get("/label", headers={"Accept": "text/html"}, follow_redirects=False)
        assert page.status_code == 303  # to the login page
    assert client.get(ME, headers=token).status_code == 401
    assert "revoked" in client.get(ME, headers=token).json()["detail"]


def test_password_change_through_the_api(client: TestClient, factory: Factory) -> None:
    user = factory.labeler()
    old = token_headers(client, user)
    second = token_headers(client, user)
    wrong = client.post(
        "/api/v1/auth/password", json={"current_password": "nope-nope-nope", "new_password": "x" * 12}, headers=old
    )
    assert wrong.status_code == 422 and "current password" in wrong.json()["detail"]
    body = {"current_password": PASSWORD, "new_password": "a-brand-new-password"}
    changed = client.post("/api/v1/auth/password", json=body, headers=old)
    assert changed.status_code == 200, changed.text
    fresh = {"Authorization": f"Bearer {changed.json()['access_token']}"}
    assert client.get(ME, headers=old).status_code == 401
    assert client.get(ME, headers=second).status_code == 401
    assert client.get(ME, headers=fresh).status_code == 200
    refused = client.post("/api/v1/auth/token", data={"username": user.username, "password": PASSWORD})
    assert refused.status_code == 401
    assert token_headers(client, user, "a-brand-new-password")


def test_password_change_page_keeps_this_browser_and_signs_out_the_others(
    app, client: TestClient, factory: Factory
) -> None:
    user = factory.researcher()
    browser_login(client, user)
    with TestClient(app) as other:
        browser_login(other, user)
        page = client.get("/account/password")
        assert page.status_code == 200
        form = {"csrf_token": csrf_from(page.text), "current_password": PASSWORD, "new_password": "x-new-password"}
        done = client.post("/account/password", data=form)
        assert done.status_code == 200 and "signed out" in done.text
        assert client.get(ME).status_code == 200
        assert other.get(ME).status_code == 401
    short = {"csrf_token": csrf_from(done.text), "current_password": "x-new-password", "new_password": "short"}
    assert client.post("/account/password", data=short).status_code == 422


def test_pausing_revokes_tokens_and_releases_the_lease(client: TestClient, factory: Factory, db: Session) -> None:
    task = make_task(db, k=4)
    labeler = factory.labeler()
    headers = token_headers(client, labeler)
    got = client.get("/api/v1/labeling/next", headers=headers)
    assert got.status_code == 200 and db.get(type(task), task.id).slots_taken == 1  # type: ignore[union-attr]
    researcher = token_headers(client, factory.researcher())
    paused = client.post(
        f"/api/v1/users/{labeler.id}/labeler-action", json={"action": "pause", "reason": "check"}, headers=researcher
    )
    assert paused.status_code == 200, paused.text
    assert client.get(ME, headers=headers).status_code == 401
    db.expire_all()
    assert db.get(Assignment, got.json()["assignment_id"]).status == AssignmentStatus.expired  # type: ignore[union-attr]
    assert db.get(type(task), task.id).slots_taken == 0  # type: ignore[union-attr]


def test_status_change_by_patch_and_role_change_revoke(client: TestClient, factory: Factory, db: Session) -> None:
    labeler, admin = factory.labeler(), factory.admin()
    headers, admin_headers = token_headers(client, labeler), token_headers(client, admin)
    resp = client.patch(f"/api/v1/users/{labeler.id}", json={"status": "paused"}, headers=admin_headers)
    assert resp.status_code == 200
    assert client.get(ME, headers=headers).status_code == 401
    other = factory.labeler()
    other_headers = token_headers(client, other)
    user_service.change_role(db, user=other, role=Role.researcher, actor=admin)
    db.flush()
    assert client.get(ME, headers=other_headers).status_code == 401


def test_the_screening_verdict_keeps_the_labeler_logged_in(db: Session, factory: Factory) -> None:
    user = factory.labeler(UserStatus.screening)
    epoch = user.auth_epoch
    user_service.change_status(db, user=user, status=UserStatus.pending_review)
    user_service.change_status(db, user=user, status=UserStatus.active)
    assert user.auth_epoch == epoch + 1  # pending review -> active is a researcher's decision
    other = factory.labeler(UserStatus.screening)
    user_service.change_status(db, user=other, status=UserStatus.active)
    assert other.auth_epoch == 0


def test_admin_signs_a_user_out_everywhere(client: TestClient, factory: Factory) -> None:
    labeler, admin, researcher = factory.labeler(), factory.admin(), factory.researcher()
    headers = token_headers(client, labeler)
    url = f"/api/v1/users/{labeler.id}/sign-out"
    assert client.post(url, headers=token_headers(client, researcher)).status_code == 403
    assert client.post(url, headers=token_headers(client, admin)).status_code == 204
    assert client.get(ME, headers=headers).status_code == 401
    assert client.get(ME, headers=token_headers(client, labeler)).status_code == 200
