"""Demonstrations on the pages: the screening card counts them, a demonstration task's page lists and reviews them,
and a review from a labeler's filtered list comes back to that list."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from app.deps import settings_dep
from app.models import Demonstration, DemonstrationStatus, UserStatus
from app.services import screening
from app.services.prompts import get_or_create_prompt
from tests.factories import browser_login, csrf_from, make_task, token_headers

NEXT = "/api/v1/labeling/next"


def _write(client: TestClient, headers: dict[str, str], content: str, key: str) -> dict:
    got = client.get(NEXT, params={"type": "demonstration"}, headers=headers)
    assert got.status_code == 200, got.text
    url = f"/api/v1/labeling/assignments/{got.json()['assignment_id']}/demonstration"
    sent = client.post(url, json={"content": content, "idempotency_key": key}, headers=headers)
    assert sent.status_code == 201, sent.text
    return sent.json()


def test_the_screening_card_counts_the_demonstrations_written(app, db, factory, settings):
    app.dependency_overrides[settings_dep] = lambda: settings.model_copy(
        update={"screening_set_size": 1, "screening_demonstrations": 1}
    )
    researcher = factory.researcher()
    gold = make_task(db, k=4, kind="screening")
    screening.import_gold_ranking(db, task=gold, researcher=researcher, gold_ranking=[[0], [1], [2], [3]])
    prompt, _ = get_or_create_prompt(db, text="screening: explain snow")
    labeler = factory.labeler(status=UserStatus.screening)
    with TestClient(app) as admin_client, TestClient(app) as page_client:
        headers = token_headers(admin_client, researcher)
        made = admin_client.post(
            "/api/v1/demonstrations/tasks", json={"prompt_ids": [prompt.id], "kind": "screening"}, headers=headers
        )
        assert made.status_code == 201, made.text
        browser_login(page_client, labeler)
        page = page_client.get("/label").text
        assert re.search(r'id="screening-demos-done" data-required="1">0</span> of\s+1 written', page), page
        lab = token_headers(admin_client, labeler)
        first = admin_client.get(NEXT, headers=lab).json()
        ranking = {"ranking": [[i.completion_id] for i in gold.items], "idempotency_key": "s"}
        url = f"/api/v1/labeling/assignments/{first['assignment_id']}/ranking"
        assert admin_client.post(url, json=ranking, headers=lab).json()["screening_done"] == 1
        written = _write(admin_client, lab, "Ice falls from clouds.", "d")
        assert written["screening_demonstrations_written"] == 1  # what the page's counter shows after the submit
        page = page_client.get("/label").text
        assert re.search(r'id="screening-demos-done" data-required="1">1</span> of\s+1 written', page)
        # an active labeler's answer carries no screening figure
        active = token_headers(admin_client, factory.labeler())
        admin_client.post("/api/v1/demonstrations/tasks", json={"prompt_ids": [prompt.id]}, headers=headers)
        assert _write(admin_client, active, "Frozen rain.", "a")["screening_demonstrations_written"] is None


def test_a_demonstration_tasks_page_lists_its_demonstrations_and_reviews_them_there(app, db, factory):
    researcher, writer = factory.researcher(), factory.labeler()
    prompt, _ = get_or_create_prompt(db, text="Name a prime number.")
    with TestClient(app) as api, TestClient(app) as pages:
        headers = token_headers(api, researcher)
        made = api.post("/api/v1/demonstrations/tasks", json={"prompt_ids": [prompt.id]}, headers=headers)
        [task_id] = made.json()["task_ids"]
        browser_login(pages, researcher)
        empty = pages.get(f"/tasks/{task_id}").text
        assert "Demonstrations (0)" in empty and "No demonstrations yet." in empty
        assert "Rankings (" not in empty  # a demonstration task is never ranked
        demo = _write(api, token_headers(api, writer), "Seven is prime.", "k")
        page = pages.get(f"/tasks/{task_id}")
        assert "Demonstrations (1)" in page.text and "Seven is prime." in page.text
        assert f'id="demo-{demo["id"]}"' in page.text and "pending review" in page.text
        reviewed = pages.post(
            f"/demonstrations/{demo['id']}/review",
            data={"csrf_token": csrf_from(page.text), "action": "reject", "reason": "say why", "back_to_task": task_id},
            follow_redirects=False,
        )
        assert reviewed.status_code == 303 and reviewed.headers["location"].startswith(f"/tasks/{task_id}")
        db.expire_all()
        stored = db.get(Demonstration, demo["id"])
        assert stored is not None and stored.status == DemonstrationStatus.rejected
        assert stored.review_reason == "say why"
        after = pages.get(reviewed.headers["location"]).text
        assert "rejected" in after and "say why" in after


def test_a_review_from_one_labelers_list_comes_back_to_that_list(app, db, factory):
    researcher, first, second = factory.researcher(), factory.labeler(), factory.labeler()
    with TestClient(app) as api, TestClient(app) as pages:
        headers = token_headers(api, researcher)
        prompts = [get_or_create_prompt(db, text=f"Describe colour {n}.")[0].id for n in range(2)]
        api.post("/api/v1/demonstrations/tasks", json={"prompt_ids": prompts}, headers=headers)
        mine = _write(api, token_headers(api, first), "Red is warm.", "a")
        _write(api, token_headers(api, second), "Blue is calm.", "b")
        browser_login(pages, researcher)
        listed = pages.get(f"/demonstrations?status=submitted&labeler_id={first.id}")
        assert "Red is warm." in listed.text and "Blue is calm." not in listed.text
        reviewed = pages.post(
            f"/demonstrations/{mine['id']}/review",
            data={
                "csrf_token": csrf_from(listed.text),
                "action": "accept",
                "status": "submitted",
                "labeler_id": first.id,
            },  # fmt: skip
            follow_redirects=False,
        )
        assert reviewed.status_code == 303
        location = reviewed.headers["location"]
        assert f"labeler_id={first.id}" in location and "status=submitted" in location, location
        back = pages.get(location).text
        assert "accepted." in back and "Blue is calm." not in back  # still only that labeler's list
