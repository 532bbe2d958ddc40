"""Demonstrations through the API: tasks from prompts, writing and rewriting, replays, revisions, review, per-labeler
figures, screening that includes demonstrations, and the SFT export."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from app.deps import settings_dep
from app.models import (
    AuditLog,
    Demonstration,
    DemonstrationStatus,
    RankingTask,
    TaskKind,
    TaskType,
    UserStatus,
)
from app.services import screening
from app.services.prompts import get_or_create_prompt
from tests.factories import make_task, token_headers

NEXT = "/api/v1/labeling/next"
CONVERSATION = [
    {"role": "system", "content": "You answer in one sentence."},
    {"role": "user", "content": "What is a prime?"},
    {"role": "assistant", "content": "A number with two divisors."},
    {"role": "user", "content": "Give an example."},
]


def _count(db, model) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def demo_task(client, factory, db):
    """A demonstration task on a three-turn conversation offering the four outputs of a ranking task to rewrite."""
    researcher = factory.researcher()
    prompt, _ = get_or_create_prompt(db, messages=CONVERSATION)
    ranking_task = make_task(db, k=4, prompt_text=None)
    ranking_task.prompt_id = prompt.id  # its outputs become this prompt's sampled outputs
    for item in ranking_task.items:
        item.completion.prompt_id = prompt.id
    ranking_task.status = "archived"
    db.flush()
    headers = token_headers(client, researcher)
    body = {"prompt_ids": [prompt.id], "starting_points": 3}
    created = client.post("/api/v1/demonstrations/tasks", json=body, headers=headers)
    assert created.status_code == 201, created.text
    [task_id] = created.json()["task_ids"]
    return researcher, headers, db.get(RankingTask, task_id), prompt


def _take(client, factory, **params):
    labeler = factory.labeler()
    headers = token_headers(client, labeler)
    got = client.get(NEXT, params=params, headers=headers)
    assert got.status_code == 200, got.text
    return labeler, headers, got.json()


def test_researchers_create_demonstration_tasks_and_bad_batches_create_nothing(client, factory, db, demo_task):
    _, headers, task, prompt = demo_task
    assert task.task_type == TaskType.demonstration and task.kind == TaskKind.production and task.k == 3
    before = _count(db, RankingTask)
    missing = client.post("/api/v1/demonstrations/tasks", json={"prompt_ids": [prompt.id, 987654]}, headers=headers)
    assert missing.status_code == 422 and "no prompts with ids [987654]" in missing.json()["detail"]
    gold = client.post(
        "/api/v1/demonstrations/tasks", json={"prompt_ids": [prompt.id], "kind": "gold"}, headers=headers
    )
    assert gold.status_code == 422
    assert _count(db, RankingTask) == before
    labeler_headers = token_headers(client, factory.labeler())
    refused = client.post("/api/v1/demonstrations/tasks", json={"prompt_ids": [prompt.id]}, headers=labeler_headers)
    assert refused.status_code == 403


def test_a_labeler_writes_a_demonstration_rewritten_from_an_output(client, factory, db, demo_task):
    _, _, task, _ = demo_task
    labeler, headers, body = _take(client, factory, type="demonstration")
    assert body["task_type"] == "demonstration" and body["prompt"]["messages"] == CONVERSATION
    outputs = [c["id"] for c in body["completions"]]
    assert len(outputs) == 3
    url = f"/api/v1/labeling/assignments/{body['assignment_id']}"
    ranking = client.post(
        f"{url}/ranking", json={"ranking": [[i] for i in outputs], "idempotency_key": "r"}, headers=headers
    )
    assert ranking.status_code == 409 and "demonstration" in ranking.json()["detail"]
    for bad, reason in (
        ({"content": "   ", "idempotency_key": "k"}, "empty"),
        ({"content": "Seven.", "source_completion_id": 987654, "idempotency_key": "k"}, "not one of this task's"),
    ):
        refused = client.post(f"{url}/demonstration", json=bad, headers=headers)
        assert refused.status_code == 422 and reason in refused.json()["detail"]
    assert _count(db, Demonstration) == 0
    sent = {"content": "Seven is prime.", "source_completion_id": outputs[1], "idempotency_key": "k"}
    stored = client.post(f"{url}/demonstration", json=sent, headers=headers)
    assert stored.status_code == 201, stored.text
    assert stored.json()["origin"] == "rewritten" and stored.json()["source_completion_id"] == outputs[1]
    assert stored.json()["time_spent_ms"] >= 0 and stored.json()["status"] == "submitted"
    replay = client.post(f"{url}/demonstration", json=sent, headers=headers)
    assert replay.status_code == 200 and replay.json()["id"] == stored.json()["id"]
    db.refresh(task)
    assert task.status == "complete" and _count(db, Demonstration) == 1  # overlap 1 is met
    # the next labeler gets nothing: the task is done
    assert client.get(NEXT, headers=token_headers(client, factory.labeler())).status_code == 204


def test_a_labeler_revises_within_the_window_until_it_is_reviewed(client, factory, db, demo_task):
    _, researcher_headers, _, _ = demo_task
    _, headers, body = _take(client, factory)
    url = f"/api/v1/labeling/assignments/{body['assignment_id']}/demonstration"
    demo_id = client.post(url, json={"content": "Two.", "idempotency_key": "a"}, headers=headers).json()["id"]
    [mine] = client.get("/api/v1/labeling/demonstrations", headers=headers).json()
    assert mine["id"] == demo_id and mine["revisable_until"] is not None
    revised = client.put(
        f"/api/v1/labeling/demonstrations/{demo_id}", json={"content": "Two, the only even prime."}, headers=headers
    )
    assert revised.status_code == 200 and revised.json()["content"] == "Two, the only even prime."
    assert db.scalar(select(AuditLog).where(AuditLog.action == "demonstration.revise")).data["content"] == "Two."
    other = token_headers(client, factory.labeler())
    assert (
        client.put(f"/api/v1/labeling/demonstrations/{demo_id}", json={"content": "x"}, headers=other).status_code
        == 403
    )
    review = {"action": "accept"}
    assert (
        client.post(f"/api/v1/demonstrations/{demo_id}/review", json=review, headers=researcher_headers).status_code
        == 200
    )
    late = client.put(f"/api/v1/labeling/demonstrations/{demo_id}", json={"content": "y"}, headers=headers)
    assert late.status_code == 409 and "can no longer be revised" in late.json()["detail"]


def _write(client, factory, db, researcher, content: str, labeler=None):
    """One more demonstration task on a fresh prompt, written by a (new) labeler; returns (labeler, demo id)."""
    prompt, _ = get_or_create_prompt(db, text=f"Write about {content}")
    headers = token_headers(client, researcher)
    client.post("/api/v1/demonstrations/tasks", json={"prompt_ids": [prompt.id]}, headers=headers)
    labeler = labeler or factory.labeler()
    lab_headers = token_headers(client, labeler)
    body = client.get(NEXT, params={"type": "demonstration"}, headers=lab_headers).json()
    url = f"/api/v1/labeling/assignments/{body['assignment_id']}/demonstration"
    demo = client.post(url, json={"content": content, "idempotency_key": content}, headers=lab_headers)
    assert demo.status_code == 201, demo.text
    return labeler, demo.json()["id"]


def test_review_accept_reject_edit_and_the_per_labeler_figures(client, factory, db):
    researcher = factory.researcher()
    headers = token_headers(client, researcher)
    ann, first = _write(client, factory, db, researcher, "tides")
    _, second = _write(client, factory, db, researcher, "rivers", labeler=ann)
    bob, third = _write(client, factory, db, researcher, "lakes")
    queue = client.get("/api/v1/demonstrations", params={"status": "submitted"}, headers=headers).json()
    assert [d["id"] for d in queue["items"]] == [first, second, third]  # oldest first
    assert queue["items"][0]["messages"] == [{"role": "user", "content": "Write about tides"}]
    review = f"/api/v1/demonstrations/{second}/review"
    no_reason = client.post(review, json={"action": "reject"}, headers=headers)
    assert no_reason.status_code == 422 and "say why" in no_reason.json()["detail"]
    assert client.post(review, json={"action": "reject", "reason": "off topic"}, headers=headers).status_code == 200
    edit = {"action": "edit", "content": "Lakes are still water."}
    edited = client.post(f"/api/v1/demonstrations/{third}/review", json=edit, headers=headers).json()
    assert edited["status"] == "accepted" and edited["original_content"] == "lakes"
    assert edited["content"] == "Lakes are still water."
    client.post(f"/api/v1/demonstrations/{first}/review", json={"action": "accept"}, headers=headers)
    stats = {s["username"]: s for s in client.get("/api/v1/demonstrations/stats", headers=headers).json()}
    assert (stats[ann.username]["submitted"], stats[ann.username]["accepted"], stats[ann.username]["rejected"]) == (
        2,
        1,
        1,
    )
    assert stats[ann.username]["acceptance_rate"] == 0.5 and stats[bob.username]["acceptance_rate"] == 1.0
    mine = client.get("/api/v1/labeling/demonstrations", headers=token_headers(client, ann)).json()
    assert {d["status"]: d["review_reason"] for d in mine}["rejected"] == "off topic"


def test_sft_export_carries_accepted_demonstrations_as_messages(client, factory, db, demo_task, tmp_path):
    from datasets import load_dataset

    researcher, headers, _, _ = demo_task
    _, headers_lab, body = _take(client, factory)
    url = f"/api/v1/labeling/assignments/{body['assignment_id']}/demonstration"
    accepted = client.post(url, json={"content": "Seven.", "idempotency_key": "e"}, headers=headers_lab).json()["id"]
    client.post(f"/api/v1/demonstrations/{accepted}/review", json={"action": "accept"}, headers=headers)
    _, rejected = _write(client, factory, db, researcher, "rejected one")
    client.post(f"/api/v1/demonstrations/{rejected}/review", json={"action": "reject", "reason": "no"}, headers=headers)
    _, pending = _write(client, factory, db, researcher, "pending one")
    lines = client.get("/api/v1/export/demonstrations", headers=headers).text.splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["demonstration_id"] for r in records] == [accepted]
    assert records[0]["messages"] == [*CONVERSATION, {"role": "assistant", "content": "Seven."}]
    assert {"labeler", "split", "guideline_version", "origin"} <= set(records[0])
    path = tmp_path / "sft.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert load_dataset("json", data_files=str(path), split="train")[0]["messages"][-1]["content"] == "Seven."


def test_screening_waits_for_the_review_of_its_demonstrations(client, factory, db, app, settings):
    app.dependency_overrides[settings_dep] = lambda: settings.model_copy(
        update={"screening_set_size": 1, "screening_demonstrations": 1}
    )
    researcher = factory.researcher()
    headers = token_headers(client, researcher)
    gold = make_task(db, k=4, kind="screening")
    screening.import_gold_ranking(db, task=gold, researcher=researcher, gold_ranking=[[0], [1], [2], [3]])
    prompt, _ = get_or_create_prompt(db, text="screening: explain rain")
    client.post("/api/v1/demonstrations/tasks", json={"prompt_ids": [prompt.id], "kind": "screening"}, headers=headers)
    outcomes = {}
    for decision in ("accept", "reject"):
        labeler = factory.labeler(status=UserStatus.screening)
        lab = token_headers(client, labeler)
        first = client.get(NEXT, headers=lab).json()
        assert first["task_type"] == "ranking"  # the rankings of the screening set come first
        ids = [i.completion_id for i in gold.items]
        ranking = {"ranking": [[i] for i in ids], "idempotency_key": f"s-{decision}"}
        sent = client.post(f"/api/v1/labeling/assignments/{first['assignment_id']}/ranking", json=ranking, headers=lab)
        assert sent.json()["labeler_status"] == "screening"  # a demonstration is still to write
        second = client.get(NEXT, headers=lab).json()
        assert second["task_type"] == "demonstration"
        url = f"/api/v1/labeling/assignments/{second['assignment_id']}/demonstration"
        demo_id = client.post(url, json={"content": "Water falls.", "idempotency_key": decision}, headers=lab).json()[
            "id"
        ]
        assert client.get(NEXT, headers=lab).status_code == 204  # screening set done, waiting for the review
        db.refresh(labeler)
        assert labeler.status == UserStatus.screening
        review = {"action": decision, "reason": "" if decision == "accept" else "too short"}
        client.post(f"/api/v1/demonstrations/{demo_id}/review", json=review, headers=headers)
        db.refresh(labeler)
        outcomes[decision] = labeler.status
    assert outcomes == {"accept": UserStatus.active, "reject": UserStatus.pending_review}
    assert (
        db.scalar(
            select(func.count()).select_from(Demonstration).where(Demonstration.status == DemonstrationStatus.accepted)
        )
        == 1
    )
