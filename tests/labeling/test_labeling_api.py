from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from app.deps import settings_dep
from app.models import (
    Assignment,
    AssignmentStatus,
    Guideline,
    Ranking,
    RankingTask,
    TaskStatus,
    UserStatus,
    utcnow,
)
from app.services import screening
from tests.factories import make_task, token_headers
from tests.labeling.labeling_helpers import NEXT, counts, submit_url


def test_next_returns_shuffled_task_and_records_order(labeler_task, db):
    labeler, _, task, body = labeler_task
    ids = [c["id"] for c in body["completions"]]
    task_ids = [i.completion_id for i in task.items]
    assert sorted(ids) == sorted(task_ids)
    assignment = db.get(Assignment, body["assignment_id"])
    assert assignment.display_order == ids and assignment.labeler_id == labeler.id
    assert body["prompt"]["id"] == task.prompt_id and body["prompt"]["text"].startswith("Prompt number")
    assert body["completions"][0]["text"].startswith("answer ")
    db.refresh(task)
    assert task.slots_taken == 1
    # exactly what a labeler sees: no kind, no gold ranking, no score; the prompt as its conversation
    assert set(body) == {"assignment_id", "task_type", "prompt", "completions", "expires_at"}
    assert body["task_type"] == "ranking"
    assert set(body["prompt"]) == {"id", "text", "messages"} and all(
        set(c) == {"id", "text"} for c in body["completions"]
    )
    assert body["prompt"]["messages"] == [{"role": "user", "content": body["prompt"]["text"]}]
    lease = datetime.fromisoformat(body["expires_at"]) - assignment.created_at.replace(tzinfo=UTC)
    assert lease == timedelta(minutes=30)  # the default lease


def test_each_labeler_sees_the_outputs_in_their_own_recorded_order(client, factory, db):
    make_task(db, k=9, overlap=6)
    orders = []
    for _ in range(6):
        body = client.get(NEXT, headers=token_headers(client, factory.labeler())).json()
        orders.append(tuple(c["id"] for c in body["completions"]))
        assert list(db.get(Assignment, body["assignment_id"]).display_order) == list(orders[-1])
    assert len(set(orders)) > 1  # 9! orders: six equal shuffles would be a broken shuffle (p < 1e-26)


def test_a_hidden_gold_task_looks_like_any_other(client, factory, db, app, settings):
    app.dependency_overrides[settings_dep] = lambda: settings.model_copy(update={"hidden_gold_share": 1.0})
    gold = make_task(db, k=4, kind="gold")
    screening.import_gold_ranking(db, task=gold, researcher=factory.researcher(), gold_ranking=[[0], [1], [2], [3]])
    labeler = factory.labeler()
    body = client.get(NEXT, headers=token_headers(client, labeler)).json()
    assert db.get(Assignment, body["assignment_id"]).task_id == gold.id
    assert set(body) == {"assignment_id", "task_type", "prompt", "completions", "expires_at"}
    page = client.get("/label", headers=token_headers(client, labeler)).text
    assert "gold" not in page.lower()


def test_repeated_next_returns_the_same_assignment(labeler_task, client):
    _, headers, _, body = labeler_task
    assert client.get(NEXT, headers=headers).json() == body


def test_next_is_204_when_nothing_to_do(client, factory):
    assert client.get(NEXT, headers=token_headers(client, factory.labeler())).status_code == 204


def test_full_submission_is_stored(labeler_task, client, db):
    labeler, headers, task, body = labeler_task
    a, b, c, d = (x["id"] for x in body["completions"])
    db.add(Guideline(version=7, body="rank well"))
    db.flush()
    payload = {
        "ranking": [[b], [a, d], [c]],
        "ratings": {str(a): 5, str(b): 7, str(c): 1, str(d): 5},
        "flags": {str(c): ["hallucination", "harmful_advice"]},
        "note": "c makes things up",
        "idempotency_key": "k-1",
    }
    resp = client.post(submit_url(body["assignment_id"]), json=payload, headers=headers)
    assert resp.status_code == 201, resp.text
    out = resp.json()
    assert out["ranking"] == [[b], [a, d], [c]] and out["submitted_today"] == 1
    ranking = db.get(Ranking, out["id"])
    assert ranking.labeler_id == labeler.id and not ranking.by_researcher and ranking.guideline_version == 7
    assert ranking.note == "c makes things up" and ranking.time_spent_ms is not None and ranking.time_spent_ms >= 0
    items = {i.completion_id: i for i in ranking.items}
    assert {cid: (i.rank, i.rating) for cid, i in items.items()} == {a: (1, 5), b: (0, 7), c: (2, 1), d: (1, 5)}
    assert items[c].flags == ["hallucination", "harmful_advice"]
    assert items[a].flags == []
    db.refresh(task)
    assert task.status == TaskStatus.complete
    assert db.get(Assignment, body["assignment_id"]).status == AssignmentStatus.submitted
    assert client.get("/api/v1/labeling/stats", headers=headers).json() == {"submitted_today": 1}


def test_not_rankable_with_empty_ranking(labeler_task, client, db):
    _, headers, _, body = labeler_task
    payload = {"ranking": [], "not_rankable": True, "idempotency_key": "nr"}
    resp = client.post(submit_url(body["assignment_id"]), json=payload, headers=headers)
    assert resp.status_code == 201, resp.text
    ranking = db.get(Ranking, resp.json()["id"])
    assert ranking.not_rankable and all(i.rank is None for i in ranking.items) and len(ranking.items) == 4


def test_replayed_idempotency_key_returns_stored_ranking(labeler_task, client, db):
    _, headers, _, body = labeler_task
    ids = [c["id"] for c in body["completions"]]
    payload = {"ranking": [[i] for i in ids], "idempotency_key": "same"}
    first = client.post(submit_url(body["assignment_id"]), json=payload, headers=headers)
    replay = client.post(submit_url(body["assignment_id"]), json=payload, headers=headers)
    assert first.status_code == 201 and replay.status_code == 200
    assert replay.json()["id"] == first.json()["id"]
    assert counts(db)[0] == 1


def _bad_payloads(ids):
    a, b, c, d = ids
    return [
        ({"ranking": [[a], [b], [c], [999999]]}, "not in this task"),
        ({"ranking": [[a], [b], [c]]}, "missing"),
        ({"ranking": [[a], [b], [c], [d, a]]}, "more than once"),
        ({"ranking": [[a], [b], [c], [d]], "ratings": {str(a): 0}}, "1 to 7"),
        ({"ranking": [[a], [b], [c], [d]], "ratings": {str(a): 8}}, "1 to 7"),
        ({"ranking": [[a], [b], [c], [d]], "ratings": {"999999": 3}}, "not in this task"),
        ({"ranking": [[a], [b], [c], [d]], "flags": {str(a): ["rude"]}}, "unknown flags"),
        ({"ranking": [[a], [b], [c], [d]], "flags": {"999999": ["hallucination"]}}, "not in this task"),
        ({"ranking": [[a, b, c, d], []]}, "empty bucket"),
        ({"ranking": []}, "empty"),
        ({"ranking": [[a], [b], [c], [d]], "note": "x" * 5001}, "note"),
        ({"ranking": [[a], [b], [c], [d]], "idempotency_key": ""}, "idempotency_key"),
    ]


def test_every_rejection_names_the_problem_and_stores_nothing(labeler_task, client, db):
    _, headers, task, body = labeler_task
    ids = [c["id"] for c in body["completions"]]
    before = counts(db)
    for payload, message in _bad_payloads(ids):
        full = {"idempotency_key": f"bad-{message}", **payload}
        resp = client.post(submit_url(body["assignment_id"]), json=full, headers=headers)
        assert resp.status_code == 422, (payload, resp.text)
        assert message in resp.json()["detail"], (payload, resp.json())
    assert counts(db) == before
    assert db.get(Assignment, body["assignment_id"]).status == AssignmentStatus.active
    db.refresh(task)
    assert task.status == TaskStatus.open


def test_someone_elses_assignment_is_403(labeler_task, client, factory, db):
    _, _, _, body = labeler_task
    other = token_headers(client, factory.labeler())
    ids = [c["id"] for c in body["completions"]]
    resp = client.post(
        submit_url(body["assignment_id"]), json={"ranking": [ids], "idempotency_key": "x"}, headers=other
    )
    assert resp.status_code == 403 and "another labeler" in resp.json()["detail"]
    assert counts(db)[0] == 0


def test_unknown_assignment_is_404(client, factory):
    headers = token_headers(client, factory.labeler())
    resp = client.post(submit_url(999999), json={"ranking": [[1]], "idempotency_key": "x"}, headers=headers)
    assert resp.status_code == 404


def test_expired_lease_is_410_and_task_returns_to_pool(labeler_task, client, factory, db):
    _, headers, task, body = labeler_task
    assignment = db.get(Assignment, body["assignment_id"])
    assignment.expires_at = utcnow() - timedelta(seconds=1)
    db.commit()  # the 410 below rolls back the request's savepoint; keep this change
    ids = [c["id"] for c in body["completions"]]
    resp = client.post(submit_url(assignment.id), json={"ranking": [ids], "idempotency_key": "late"}, headers=headers)
    assert resp.status_code == 410 and "expired" in resp.json()["detail"]
    assert counts(db)[0] == 0
    # another labeler's next sweeps the lease and gets the task
    other = client.get(NEXT, headers=token_headers(client, factory.labeler()))
    assert other.status_code == 200
    db.refresh(assignment)
    db.refresh(task)
    assert assignment.status == AssignmentStatus.expired and task.slots_taken == 1
    assert db.get(Assignment, other.json()["assignment_id"]).task_id == task.id
    # the first labeler never sees it again
    assert client.get(NEXT, headers=headers).status_code == 204


def test_double_submit_with_new_key_is_409(labeler_task, client, db):
    _, headers, _, body = labeler_task
    ids = [c["id"] for c in body["completions"]]
    ok = client.post(
        submit_url(body["assignment_id"]), json={"ranking": [ids], "idempotency_key": "1"}, headers=headers
    )
    assert ok.status_code == 201
    again = client.post(
        submit_url(body["assignment_id"]), json={"ranking": [ids], "idempotency_key": "2"}, headers=headers
    )
    assert again.status_code == 409 and "already submitted" in again.json()["detail"]
    assert counts(db)[0] == 1


def test_key_reused_on_another_assignment_is_409(client, factory, db):
    make_task(db, k=4)
    make_task(db, k=4)
    headers = token_headers(client, factory.labeler())
    first = client.get(NEXT, headers=headers).json()
    ids = [c["id"] for c in first["completions"]]
    assert (
        client.post(
            submit_url(first["assignment_id"]), json={"ranking": [ids], "idempotency_key": "k"}, headers=headers
        ).status_code
        == 201
    )
    second = client.get(NEXT, headers=headers).json()
    assert second["assignment_id"] != first["assignment_id"]
    ids2 = [c["id"] for c in second["completions"]]
    resp = client.post(
        submit_url(second["assignment_id"]), json={"ranking": [ids2], "idempotency_key": "k"}, headers=headers
    )
    assert resp.status_code == 409 and "another assignment" in resp.json()["detail"]


def test_overlap_limits_labelers_and_never_twice(client, factory, db):
    task = make_task(db, k=4, overlap=2)
    heads = [token_headers(client, factory.labeler()) for _ in range(3)]
    got = [client.get(NEXT, headers=h) for h in heads]
    assert [r.status_code for r in got] == [200, 200, 204]
    for h, r in zip(heads[:2], got[:2], strict=True):
        ids = [c["id"] for c in r.json()["completions"]]
        client.post(submit_url(r.json()["assignment_id"]), json={"ranking": [ids], "idempotency_key": "z"}, headers=h)
    db.refresh(task)
    assert task.status == TaskStatus.complete and task.slots_taken == 2
    assert client.get(NEXT, headers=heads[0]).status_code == 204


def test_skip_releases_slot_and_needs_reason(labeler_task, client, factory, db):
    _, headers, task, body = labeler_task
    url = f"/api/v1/labeling/assignments/{body['assignment_id']}/skip"
    empty = client.post(url, json={"reason": " "}, headers=headers)
    assert empty.status_code == 422 and "reason" in empty.json()["detail"]
    resp = client.post(url, json={"reason": "I don't read Finnish"}, headers=headers)
    assert resp.status_code == 200 and resp.json()["status"] == "skipped"
    assignment = db.get(Assignment, body["assignment_id"])
    db.refresh(task)
    assert assignment.skip_reason == "I don't read Finnish" and task.slots_taken == 0
    assert client.get(NEXT, headers=headers).status_code == 204  # never the same task again
    assert client.get(NEXT, headers=token_headers(client, factory.labeler())).status_code == 200
    again = client.post(url, json={"reason": "again"}, headers=headers)
    assert again.status_code == 409


def test_screening_labeler_gets_only_screening_tasks(client, factory, db):
    make_task(db, k=4, kind="production")
    screening_task = make_task(db, k=5, kind="screening", overlap=1)
    # served to labelers once a researcher has ranked it (the gold answer their screening is scored against)
    screening.import_gold_ranking(
        db, task=screening_task, researcher=factory.researcher(), gold_ranking=[[0], [1], [2], [3], [4]]
    )
    newcomer = token_headers(client, factory.labeler(status=UserStatus.screening))
    body = client.get(NEXT, headers=newcomer).json()
    assert db.get(Assignment, body["assignment_id"]).task_id == screening_task.id
    # screening tasks ignore overlap: a second newcomer gets the same task
    second = client.get(NEXT, headers=token_headers(client, factory.labeler(status=UserStatus.screening))).json()
    assert db.get(Assignment, second["assignment_id"]).task_id == screening_task.id
    # active labelers never get screening tasks
    active = token_headers(client, factory.labeler())
    got = db.get(Assignment, client.get(NEXT, headers=active).json()["assignment_id"])
    assert db.get(RankingTask, got.task_id).kind.value == "production"


def test_researcher_ranks_gold_and_is_marked(client, factory, db):
    make_task(db, k=4, kind="production")
    gold = make_task(db, k=4, kind="gold", overlap=1)
    headers = token_headers(client, factory.researcher())
    body = client.get(NEXT, headers=headers).json()
    assert db.get(Assignment, body["assignment_id"]).task_id == gold.id
    ids = [c["id"] for c in body["completions"]]
    out = client.post(
        submit_url(body["assignment_id"]), json={"ranking": [ids], "idempotency_key": "g"}, headers=headers
    )
    assert out.status_code == 201 and out.json()["by_researcher"] is True
    db.refresh(gold)
    assert gold.status == TaskStatus.open  # gold stays open for other researchers
    assert client.get(NEXT, headers=token_headers(client, factory.researcher())).status_code == 200
    assert client.get(NEXT, headers=headers).status_code == 204


def test_kind_order_comes_from_settings(client, factory, db, settings, app):
    make_task(db, k=4, kind="production")
    eval_task = make_task(db, k=4, kind="eval")
    from app.deps import settings_dep

    app.dependency_overrides[settings_dep] = lambda: settings.model_copy(
        update={"task_kind_order": ["eval", "production"]}
    )
    body = client.get(NEXT, headers=token_headers(client, factory.labeler())).json()
    assert db.get(Assignment, body["assignment_id"]).task_id == eval_task.id


def test_priority_then_newest_first(client, factory, db):
    urgent = make_task(db, k=4, priority=5)
    make_task(db, k=4)
    body = client.get(NEXT, headers=token_headers(client, factory.labeler())).json()
    assert db.get(Assignment, body["assignment_id"]).task_id == urgent.id


def test_paused_labeler_cannot_get_tasks(client, factory, db):
    make_task(db, k=4)
    labeler = factory.labeler(status=UserStatus.paused)
    resp = client.get(NEXT, headers=token_headers(client, labeler))
    assert resp.status_code == 403 and "paused" in resp.json()["detail"]
    assert db.scalar(select(func.count()).select_from(Assignment)) == 0
