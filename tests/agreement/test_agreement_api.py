import random

import pytest

from app.models import TaskKind, TaskStatus, UserStatus
from app.services import assignment
from tests.agreement.helpers import add_ranking, make_task, singletons
from tests.factories import token_headers

PAGES = ["labelers", "overview", "tasks", "matrix", "disagreements"]


def test_labelers_get_403_on_every_agreement_endpoint(client, factory):
    headers = token_headers(client, factory.labeler())
    for page in PAGES:
        assert client.get(f"/api/v1/agreement/{page}", headers=headers).status_code == 403
    assert client.post("/api/v1/users/1/labeler-action", json={"action": "pause"}, headers=headers).status_code == 403
    assert client.get("/api/v1/agreement/labelers").status_code == 401


def test_agreement_endpoints_return_figures(client, factory, db):
    researcher, a, b = factory.researcher(), factory.labeler(), factory.labeler()
    gold = make_task(db, kind=TaskKind.gold)
    add_ranking(db, task=gold, user=researcher, order=singletons([0, 1, 2, 3]))
    add_ranking(db, task=gold, user=a, order=singletons([0, 1, 2, 3]))
    add_ranking(db, task=gold, user=b, order=singletons([3, 2, 1, 0]))
    calm = make_task(db, overlap=2)
    add_ranking(db, task=calm, user=a, order=singletons([0, 1, 2, 3]))
    add_ranking(db, task=calm, user=b, order=singletons([0, 1, 2, 3]))
    headers = token_headers(client, researcher)
    tasks = client.get("/api/v1/agreement/tasks", headers=headers).json()
    assert [(t["task_id"], t["agreement"]) for t in tasks] == [(gold.id, 0.0), (calm.id, 1.0)]
    queue = client.get("/api/v1/agreement/disagreements", headers=headers).json()
    assert queue[0]["task_id"] == gold.id and len(queue[0]["rankings"]) == 3
    assert queue[0]["rankings"][0]["buckets"] == [["A"], ["B"], ["C"], ["D"]]
    matrix = client.get("/api/v1/agreement/matrix", headers=headers).json()
    assert [r["username"] for r in matrix["researchers"]] == [researcher.username]
    cells = {row["user_id"]: row["cells"][0]["agreement"] for row in matrix["rows"]}
    assert cells == {a.id: 1.0, b.id: 0.0}
    overview = client.get("/api/v1/agreement/overview", headers=headers).json()
    assert overview["agreement_with_researchers"]["value"] == pytest.approx(0.5)
    assert overview["inter_labeler"]["value"] == pytest.approx(6 / 12)
    detail = client.get(f"/api/v1/agreement/labelers/{b.id}", headers=headers).json()
    assert detail["labeler"]["agreement_with_researchers"] == 0.0
    assert [t["task_id"] for t in detail["tasks"]] == [gold.id]
    assert detail["tasks"][0]["mine"]["buckets"] == [["D"], ["C"], ["B"], ["A"]]


def test_labeler_actions_and_promote_to_gold(client, factory, db):
    researcher, lab = factory.researcher(), factory.labeler()
    headers = token_headers(client, researcher)
    url = f"/api/v1/users/{lab.id}/labeler-action"
    assert client.post(url, json={"action": "pause", "reason": "check"}, headers=headers).json()["status"] == "paused"
    assert client.post(url, json={"action": "pause"}, headers=headers).status_code == 409
    assert client.post(url, json={"action": "resume"}, headers=headers).json()["status"] == "active"
    other = client.post(f"/api/v1/users/{researcher.id}/labeler-action", json={"action": "pause"}, headers=headers)
    assert other.status_code == 422
    task = make_task(db)
    resp = client.post(f"/api/v1/tasks/{task.id}/promote-gold", headers=headers)
    assert resp.json() == {"id": task.id, "kind": "gold"}
    assert client.post(f"/api/v1/tasks/{task.id}/promote-gold", headers=headers).status_code == 409
    # researchers are then served the promoted task to rank
    served = client.get("/api/v1/labeling/next", headers=headers).json()
    assert {c["id"] for c in served["completions"]} == {i.completion_id for i in task.items}


def test_gold_ranking_only_for_gold_kinds(client, factory):
    headers = token_headers(client, factory.researcher())
    body = {"prompt": "Name a colour", "completions": ["red", "blue", "green", "tea"], "gold_ranking": [[0, 1, 2, 3]]}
    resp = client.post("/api/v1/tasks", json=body, headers=headers)
    assert resp.status_code == 422 and "gold" in resp.json()["detail"]
    resp = client.post("/api/v1/tasks", json={**body, "kind": "gold", "gold_ranking": [[0], [1]]}, headers=headers)
    assert resp.status_code == 422 and "exactly once" in resp.json()["detail"]
    listed = client.get("/api/v1/tasks", params={"q": "Name a colour"}, headers=headers).json()
    assert listed["total"] == 0  # nothing half-written


def test_hidden_gold_share_in_next_assignment(db, factory, settings):
    researcher = factory.researcher()
    gold = make_task(db, kind=TaskKind.gold)
    add_ranking(db, task=gold, user=researcher, order=singletons([0, 1, 2, 3]))
    production = make_task(db)
    always = settings.model_copy(update={"hidden_gold_share": 1.0})
    never = settings.model_copy(update={"hidden_gold_share": 0.0})
    lab1, lab2 = factory.labeler(), factory.labeler()
    got = assignment.next_assignment(db, labeler=lab1, settings=always, rng=random.Random(3))
    assert got is not None and got.task_id == gold.id
    got = assignment.next_assignment(db, labeler=lab2, settings=never, rng=random.Random(3))
    assert got is not None and got.task_id == production.id


def test_adaptive_overlap_through_the_api(client, factory, db, app, settings):
    from app.deps import settings_dep

    custom = settings.model_copy(update={"adaptive_overlap_max": 3, "hidden_gold_share": 0.0})
    app.dependency_overrides[settings_dep] = lambda: custom
    task = make_task(db, overlap=2)
    orders = [lambda ids: [[i] for i in ids], lambda ids: [[i] for i in reversed(ids)]]
    for order in orders:
        headers = token_headers(client, factory.labeler(status=UserStatus.active))
        served = client.get("/api/v1/labeling/next", headers=headers).json()
        ids = sorted(c["id"] for c in served["completions"])
        body = {"ranking": order(ids), "idempotency_key": f"k{served['assignment_id']}"}
        resp = client.post(
            f"/api/v1/labeling/assignments/{served['assignment_id']}/ranking", json=body, headers=headers
        )
        assert resp.status_code == 201, resp.text
    db.refresh(task)
    assert task.overlap == 3 and task.status == TaskStatus.open
    third = token_headers(client, factory.labeler(status=UserStatus.active))
    assert client.get("/api/v1/labeling/next", headers=third).status_code == 200
