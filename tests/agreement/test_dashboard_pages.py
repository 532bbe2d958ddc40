from app.models import Assignment, TaskKind, UserStatus
from tests.agreement.helpers import add_ranking, make_task, singletons
from tests.factories import browser_login

PAGES = ["/dashboard", "/dashboard/labelers", "/dashboard/matrix", "/dashboard/disagreements"]


def _seed(db, factory):
    researcher, lab = factory.researcher(), factory.labeler(status=UserStatus.pending_review)
    gold = make_task(db, kind=TaskKind.screening)
    add_ranking(db, task=gold, user=researcher, order=singletons([0, 1, 2, 3]), flags={1: ["hallucination"]})
    add_ranking(db, task=gold, user=lab, order=singletons([1, 0, 2, 3]), seconds=12, flags={2: ["hallucination"]})
    return researcher, lab, gold


def test_researcher_sees_every_dashboard_with_figures(client, factory, db):
    researcher, lab, gold = _seed(db, factory)
    browser_login(client, researcher)
    for url in [*PAGES, f"/dashboard/labelers/{lab.id}"]:
        resp = client.get(url, headers={"accept": "text/html"})
        assert resp.status_code == 200, (url, resp.text[:300])
        assert "vendor/chart.umd.js" in resp.text and 'id="chart-data"' in resp.text
    labelers = client.get("/dashboard/labelers").text
    assert lab.username in labelers and "83.3%" in labelers  # 5 of 6 pairs
    assert "too few gold rankings" in labelers  # one gold ranking: no interval
    detail = client.get(f"/dashboard/labelers/{lab.id}").text
    flags = detail[detail.index('id="flag-agreement"') :]
    assert "<td>hallucination</td><td>50.0%</td>" in flags  # they agree on 2 of the 4 outputs


def test_labeler_gets_403_on_every_dashboard(client, factory, db):
    _, lab, _ = _seed(db, factory)
    browser_login(client, factory.labeler())
    for url in [*PAGES, f"/dashboard/labelers/{lab.id}"]:
        assert client.get(url, headers={"accept": "text/html"}).status_code == 403


def test_actions_need_csrf_and_change_status(client, factory, db):
    researcher, lab, gold = _seed(db, factory)
    csrf = browser_login(client, researcher)
    url = f"/dashboard/labelers/{lab.id}/action"
    assert client.post(url, data={"action": "approve"}, follow_redirects=False).status_code == 403
    resp = client.post(url, data={"action": "approve", "csrf_token": csrf}, follow_redirects=False)
    assert resp.status_code == 303
    db.refresh(lab)
    assert lab.status == UserStatus.active
    production = make_task(db)
    other = factory.labeler()
    add_ranking(db, task=production, user=lab, order=singletons([0, 1, 2, 3]))
    add_ranking(db, task=production, user=other, order=singletons([3, 2, 1, 0]))
    assert f'data-task="{production.id}"' in client.get("/dashboard/disagreements").text
    resp = client.post(f"/dashboard/tasks/{production.id}/promote", data={"csrf_token": csrf}, follow_redirects=False)
    assert resp.status_code == 303
    db.refresh(production)
    assert production.kind == TaskKind.gold


def test_adjudicating_a_disputed_task_makes_it_the_researchers_next_ranking(client, factory, db):
    researcher = factory.researcher()
    a, b = factory.labeler(), factory.labeler()
    disputed = make_task(db)
    add_ranking(db, task=disputed, user=a, order=singletons([0, 1, 2, 3]))
    add_ranking(db, task=disputed, user=b, order=singletons([3, 2, 1, 0]))
    waiting = make_task(db, kind=TaskKind.gold)  # an older gold task would otherwise come first
    csrf = browser_login(client, researcher)
    page = client.get("/dashboard/disagreements").text
    assert f"/dashboard/tasks/{disputed.id}/adjudicate" in page
    resp = client.post(f"/dashboard/tasks/{disputed.id}/adjudicate", data={"csrf_token": csrf}, follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/label"
    db.refresh(disputed)
    assert disputed.kind == TaskKind.gold
    body = client.get("/api/v1/labeling/next").json()
    assert db.get(Assignment, body["assignment_id"]).task_id == disputed.id != waiting.id
    ids = [c["id"] for c in body["completions"]]
    submit = client.post(
        f"/api/v1/labeling/assignments/{body['assignment_id']}/ranking",
        json={"ranking": [[i] for i in ids], "idempotency_key": "adjudication"},
        headers={"X-CSRF-Token": csrf},
    )
    assert submit.status_code == 201, submit.text
    assert submit.json()["by_researcher"] is True
    again = client.post(f"/dashboard/tasks/{disputed.id}/adjudicate", data={"csrf_token": csrf}, follow_redirects=False)
    assert again.status_code == 409 and "already ranked" in again.text
    assert f"/dashboard/tasks/{disputed.id}/adjudicate" not in client.get("/dashboard/disagreements").text
    # labelers cannot adjudicate
    csrf_lab = browser_login(client, a)
    denied = client.post(f"/dashboard/tasks/{disputed.id}/adjudicate", data={"csrf_token": csrf_lab})
    assert denied.status_code == 403


def test_labelers_table_is_paged(client, factory, monkeypatch):
    from app.routes import dashboard

    monkeypatch.setattr(dashboard, "LABELERS_PER_PAGE", 2)
    names = sorted(factory.labeler().username for _ in range(3))
    browser_login(client, factory.researcher())
    first = client.get("/dashboard/labelers").text
    assert names[0] in first and names[1] in first and names[2] not in first
    assert "Labelers 1–2 of 3" in first and "?page=2" in first and 'rel="prev"' not in first
    second = client.get("/dashboard/labelers?page=2").text
    assert names[2] in second and names[0] not in second and "3–3 of 3" in second and "?page=1" in second
    assert "none of 3 on page 5" in client.get("/dashboard/labelers?page=5").text
    assert client.get("/dashboard/labelers?page=0").status_code == 422
