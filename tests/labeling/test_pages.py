from sqlalchemy import select

from app.models import Guideline
from tests.factories import browser_login


def test_labeling_page_has_csrf_meta_vendored_js_and_counter(client, factory):
    browser_login(client, factory.labeler())
    page = client.get("/label")
    assert page.status_code == 200
    assert '<meta name="csrf-token" content="' in page.text
    assert "/static/vendor/sortablejs/Sortable.min.js" in page.text and "cdn" not in page.text.lower()
    assert 'id="today-count">0<' in page.text
    assert client.get("/static/vendor/sortablejs/Sortable.min.js").status_code == 200
    assert client.get("/static/js/ranking.js").status_code == 200


def test_labeling_page_needs_login(client):
    resp = client.get("/label", headers={"accept": "text/html"}, follow_redirects=False)
    assert resp.status_code == 303 and "/login" in resp.headers["location"]


def test_researcher_publishes_guidelines_as_new_versions_escaped(client, factory, db):
    researcher = factory.researcher()
    csrf = browser_login(client, researcher)
    for body in ("# Rank well\nFirst version", "# Rank well\n<script>alert(1)</script> second"):
        resp = client.post("/guidelines", data={"body": body, "csrf_token": csrf}, follow_redirects=False)
        assert resp.status_code == 303
    versions = db.scalars(select(Guideline.version).order_by(Guideline.version)).all()
    assert versions[-2:] == [versions[-1] - 1, versions[-1]]
    page = client.get("/guidelines").text
    assert "<h1>Rank well</h1>" in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    old = client.get(f"/guidelines?version={versions[-2]}").text
    assert "First version" in old


def test_labelers_cannot_publish_guidelines(client, factory):
    csrf = browser_login(client, factory.labeler())
    resp = client.post(
        "/guidelines", data={"body": "mine now", "csrf_token": csrf}, headers={"accept": "application/json"}
    )
    assert resp.status_code == 403


def test_researcher_promotes_a_task_to_gold_from_its_page(client, factory, db):
    from sqlalchemy import select

    from app.models import AuditLog, TaskKind
    from tests.factories import csrf_from, make_task

    task = make_task(db, prompt_text="promote me from the task page")
    browser_login(client, factory.researcher())
    page = client.get(f"/tasks/{task.id}")
    assert page.status_code == 200 and "Promote to gold" in page.text
    resp = client.post(
        f"/dashboard/tasks/{task.id}/promote",
        data={"csrf_token": csrf_from(page.text), "back": f"/tasks/{task.id}"},
        follow_redirects=False,
    )
    assert resp.status_code == 303 and resp.headers["location"] == f"/tasks/{task.id}"
    db.refresh(task)
    assert task.kind == TaskKind.gold
    assert db.scalar(select(AuditLog).where(AuditLog.action == "task.promote_gold")) is not None
    assert "Promote to gold" not in client.get(f"/tasks/{task.id}").text
