"""Leases that are renewed, expire and come back, and rankings revised within their window (the labeling API)."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.deps import settings_dep
from app.models import Assignment, AssignmentStatus, Ranking, utcnow
from tests.factories import token_headers
from tests.labeling.labeling_helpers import NEXT, lease_url, submit_url


def test_lease_renews_and_an_expired_one_comes_back_while_the_task_is_free(labeler_task, client, factory, db):
    _, headers, task, body = labeler_task
    assignment = db.get(Assignment, body["assignment_id"])
    assignment.expires_at = utcnow() + timedelta(minutes=2)
    db.commit()
    resp = client.post(lease_url(assignment.id), headers=headers)
    assert resp.status_code == 200
    assert datetime.fromisoformat(resp.json()["expires_at"]) > datetime.now(UTC) + timedelta(minutes=25)
    # swept while the labeler was away, nobody took the slot: renewing takes it back, and the ranking goes in
    assignment.status, assignment.expires_at = AssignmentStatus.expired, utcnow() - timedelta(minutes=1)
    task.slots_taken = 0
    db.commit()
    assert client.post(lease_url(assignment.id), headers=headers).status_code == 200
    db.refresh(assignment)
    db.refresh(task)
    assert assignment.status == AssignmentStatus.active and task.slots_taken == 1
    ids = [c["id"] for c in body["completions"]]
    done = client.post(submit_url(assignment.id), json={"ranking": [ids], "idempotency_key": "back"}, headers=headers)
    assert done.status_code == 201
    assert client.post(lease_url(assignment.id), headers=headers).status_code == 409
    assert client.post(lease_url(assignment.id), headers=token_headers(client, factory.labeler())).status_code == 403


def test_an_expired_lease_whose_task_went_to_someone_else_is_gone(labeler_task, client, factory, db):
    _, headers, task, body = labeler_task
    assignment = db.get(Assignment, body["assignment_id"])
    assignment.expires_at = utcnow() - timedelta(seconds=1)
    db.commit()
    assert client.get(NEXT, headers=token_headers(client, factory.labeler())).status_code == 200  # sweeps, takes it
    resp = client.post(lease_url(assignment.id), headers=headers)
    assert resp.status_code == 410 and "other labelers" in resp.json()["detail"]


def test_a_ranking_is_revised_within_its_window_and_the_old_one_is_audited(labeler_task, client, factory, db):
    from app.models import AuditLog

    _, headers, _, body = labeler_task
    ids = [c["id"] for c in body["completions"]]
    first = {"ranking": [ids], "idempotency_key": "r"}
    sent = client.post(submit_url(body["assignment_id"]), json=first, headers=headers)
    ranking_id = sent.json()["id"]
    mine = client.get("/api/v1/labeling/rankings", headers=headers).json()
    assert [r["id"] for r in mine] == [ranking_id] and mine[0]["revisable_until"] is not None
    shown = client.get(f"/api/v1/labeling/rankings/{ranking_id}", headers=headers).json()
    assert [c["id"] for c in shown["completions"]] == ids  # in the order the labeler saw them
    new = [[i] for i in reversed(ids)]
    url = f"/api/v1/labeling/rankings/{ranking_id}"
    resp = client.put(url, json={"ranking": new, "ratings": {str(ids[0]): 2}, "note": "fixed"}, headers=headers)
    assert resp.status_code == 200 and resp.json()["ranking"] == new and resp.json()["note"] == "fixed"
    stored = db.get(Ranking, ranking_id)
    db.refresh(stored)
    assert stored.buckets == new and {i.completion_id: i.rating for i in stored.items}[ids[0]] == 2
    entry = db.scalar(select(AuditLog).where(AuditLog.action == "ranking.revise"))
    assert entry.data["before"]["buckets"] == [ids]
    assert client.put(url, json={"ranking": new}, headers=token_headers(client, factory.labeler())).status_code == 403
    stored.created_at = utcnow() - timedelta(minutes=11)  # the window has passed
    db.commit()
    late = client.put(url, json={"ranking": [ids]}, headers=headers)
    assert late.status_code == 409 and "no longer" in late.json()["detail"]


@pytest.mark.parametrize(("minutes", "revisable"), [(30, True), (0, False)])
def test_the_revision_window_is_a_setting(labeler_task, client, db, app, settings, minutes, revisable):
    app.dependency_overrides[settings_dep] = lambda: settings.model_copy(update={"revision_minutes": minutes})
    _, headers, _, body = labeler_task
    ids = [c["id"] for c in body["completions"]]
    first = {"ranking": [ids], "idempotency_key": "w"}
    sent = client.post(submit_url(body["assignment_id"]), json=first, headers=headers)
    ranking_id = sent.json()["id"]
    stored = db.get(Ranking, ranking_id)
    stored.created_at = utcnow() - timedelta(minutes=11)  # past the default 10-minute window
    db.commit()
    mine = client.get("/api/v1/labeling/rankings", headers=headers).json()
    assert (mine[0]["revisable_until"] is not None) is revisable
    resp = client.put(f"/api/v1/labeling/rankings/{ranking_id}", json={"ranking": [[i] for i in ids]}, headers=headers)
    if revisable:
        assert resp.status_code == 200
    else:
        assert resp.status_code == 409 and "cannot be revised on this server" in resp.json()["detail"]
    page = client.get("/label", headers=headers)
    assert ("Rankings are final once sent" in page.text) is not revisable
