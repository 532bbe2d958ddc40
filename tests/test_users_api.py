import pytest
from sqlalchemy import select

from app.models import AuditLog, Role, User, UserStatus
from tests.factories import token_headers


def test_admin_creates_labeler_in_screening(client, factory, db):
    headers = token_headers(client, factory.admin())
    resp = client.post(
        "/api/v1/users", json={"username": "lab1", "password": "pw-long-1", "role": "labeler"}, headers=headers
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["role"] == "labeler" and body["status"] == "screening"
    assert "password" not in body and "password_hash" not in body
    stored = db.scalar(select(User).where(User.username == "lab1"))
    assert stored is not None and stored.password_hash.startswith("$argon2")


def test_admin_can_create_active_labeler(client, factory):
    headers = token_headers(client, factory.admin())
    resp = client.post(
        "/api/v1/users",
        headers=headers,
        json={"username": "lab2", "password": "pw-long-1", "role": "labeler", "status": "active"},
    )
    assert resp.json()["status"] == "active"


def test_duplicate_username_is_409(client, factory, db):
    admin = factory.admin()
    headers = token_headers(client, admin)
    body = {"username": "dup", "password": "pw-long-1", "role": "labeler"}
    assert client.post("/api/v1/users", json=body, headers=headers).status_code == 201
    resp = client.post("/api/v1/users", json={**body, "username": "DUP"}, headers=headers)
    assert resp.status_code == 409
    assert "already exists" in resp.json()["detail"]


def test_bad_user_input_is_422_with_message(client, factory):
    headers = token_headers(client, factory.admin())
    resp = client.post("/api/v1/users", json={"username": "x", "password": "short", "role": "boss"}, headers=headers)
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    assert "username" in detail and "password" in detail and "role" in detail


def test_role_guards(client, factory):
    labeler_headers = token_headers(client, factory.labeler())
    researcher_headers = token_headers(client, factory.researcher())
    body = {"username": "someone", "password": "pw-long-1", "role": "labeler"}
    # a labeler gets 403 on admin and researcher routes
    assert client.post("/api/v1/users", json=body, headers=labeler_headers).status_code == 403
    assert client.get("/api/v1/users", headers=labeler_headers).status_code == 403
    assert client.patch("/api/v1/users/1", json={"status": "active"}, headers=labeler_headers).status_code == 403
    # a researcher may list but not create
    assert client.get("/api/v1/users", headers=researcher_headers).status_code == 200
    assert client.post("/api/v1/users", json=body, headers=researcher_headers).status_code == 403
    # nobody logged in: 401
    assert client.get("/api/v1/users").status_code == 401


def test_researcher_changes_labeler_status_with_audit(client, factory, db):
    labeler = factory.user(Role.labeler)
    researcher = factory.researcher()
    resp = client.patch(
        f"/api/v1/users/{labeler.id}",
        json={"status": "active", "reason": "passed screening"},
        headers=token_headers(client, researcher),
    )
    assert resp.status_code == 200 and resp.json()["status"] == "active"
    db.refresh(labeler)
    assert labeler.status == UserStatus.active
    entry = db.scalar(select(AuditLog).where(AuditLog.target_user_id == labeler.id, AuditLog.action == "user.status"))
    assert entry is not None and entry.actor_id == researcher.id and entry.reason == "passed screening"


def test_researcher_cannot_change_admin(client, factory):
    admin = factory.admin()
    resp = client.patch(
        f"/api/v1/users/{admin.id}", json={"status": "suspended"}, headers=token_headers(client, factory.researcher())
    )
    assert resp.status_code == 403


def test_rejecting_needs_a_reason_and_activating_clears_the_gold_alert(client, factory, db):
    headers = token_headers(client, factory.researcher())
    labeler = factory.user(Role.labeler, UserStatus.pending_review)
    db.commit()  # ends the savepoint, so the refused request's rollback keeps the labeler
    resp = client.patch(f"/api/v1/users/{labeler.id}", json={"status": "rejected", "reason": "  "}, headers=headers)
    assert resp.status_code == 422 and "give a reason" in resp.json()["detail"]
    db.refresh(labeler)
    assert labeler.status == UserStatus.pending_review
    flagged = factory.user(Role.labeler, UserStatus.paused)
    flagged.gold_alert = True
    db.flush()
    resp = client.patch(f"/api/v1/users/{flagged.id}", json={"status": "active"}, headers=headers)
    assert resp.status_code == 200
    db.refresh(flagged)
    assert flagged.status == UserStatus.active and flagged.gold_alert is False


def test_patch_unknown_user_and_bad_status(client, factory):
    headers = token_headers(client, factory.admin())
    assert client.patch("/api/v1/users/999999", json={"status": "active"}, headers=headers).status_code == 404
    assert client.patch("/api/v1/users/1", json={"status": "sleeping"}, headers=headers).status_code == 422


def test_suspended_users_token_stops_working(client, factory, db):
    labeler = factory.user(Role.labeler, UserStatus.active)
    headers = token_headers(client, labeler)
    labeler.status = UserStatus.suspended
    db.flush()
    assert client.get("/api/v1/users", headers=headers).status_code == 401


def test_the_last_active_admin_cannot_be_demoted_or_suspended(client, factory, db):
    """Issue 21: an install never loses its last admin through the API or the admin page."""
    from app.models import Role, User, UserStatus
    from app.services import users as user_service

    for other in db.query(User).filter(User.role == Role.admin):
        other.status = UserStatus.paused
    admin = factory.admin()
    headers = token_headers(client, admin)
    refused = client.patch(f"/api/v1/users/{admin.id}", json={"status": "suspended"}, headers=headers)
    assert refused.status_code == 409 and "last active admin" in refused.json()["detail"]
    with pytest.raises(Exception, match="last active admin"):
        user_service.change_role(db, user=admin, role=Role.researcher, actor=admin)
    second = factory.admin()
    user_service.change_role(db, user=admin, role=Role.researcher, actor=second)  # another admin remains
    assert admin.role == Role.researcher and second.status == UserStatus.active
