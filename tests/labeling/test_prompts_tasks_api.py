from sqlalchemy import func, select

from app.models import Completion, Prompt, PromptSource, RankingTask, Split, TaskKind
from tests.factories import browser_login, make_task, token_headers


def _count(db, model):
    return db.scalar(select(func.count()).select_from(model))


def test_post_prompts_creates_and_reports_duplicates(client, factory, db):
    headers = token_headers(client, factory.researcher())
    body = {
        "prompts": [
            {"text": "What is RLHF?", "split": "eval", "metadata": {"source": "faq"}},
            {"text": "Write a haiku about rain."},
            {"text": "  what is   RLHF? "},  # duplicate of the first, inside the batch
        ]
    }
    resp = client.post("/api/v1/prompts", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    out = resp.json()
    assert out["created"] == 2 and out["duplicates"] == 1
    assert len(out["ids"]) == 3 and out["ids"][0] == out["ids"][2]
    first = db.get(Prompt, out["ids"][0])
    assert first.split == Split.eval and first.meta == {"source": "faq"} and first.source == PromptSource.import_
    again = client.post("/api/v1/prompts", json={"prompts": [{"text": "WRITE a haiku about rain."}]}, headers=headers)
    assert again.json() == {"created": 0, "duplicates": 1, "ids": [out["ids"][1]], "duplicate_ids": [out["ids"][1]]}


def test_post_prompts_with_a_bad_entry_imports_nothing(client, factory, db):
    headers = token_headers(client, factory.researcher())
    before = _count(db, Prompt)
    body = {"prompts": [{"text": "A fine prompt that is new"}, {"text": "   "}]}
    resp = client.post("/api/v1/prompts", json=body, headers=headers)
    assert resp.status_code == 422
    assert "prompt 2" in resp.json()["detail"] and "empty" in resp.json()["detail"]
    assert _count(db, Prompt) == before


def test_post_prompts_split_ratio(client, factory, db):
    headers = token_headers(client, factory.researcher())
    body = {"prompts": [{"text": f"ratio prompt {i}"} for i in range(20)], "split_ratio": "0,1,0"}
    ids = client.post("/api/v1/prompts", json=body, headers=headers).json()["ids"]
    assert {db.get(Prompt, i).split for i in ids} == {Split.validation}
    bad = client.post("/api/v1/prompts", json={**body, "split_ratio": "1,2"}, headers=headers)
    assert bad.status_code == 422 and "split ratio" in bad.json()["detail"]


def test_prompts_api_is_for_researchers(client, factory):
    headers = token_headers(client, factory.labeler())
    assert client.post("/api/v1/prompts", json={"prompts": [{"text": "x"}]}, headers=headers).status_code == 403
    assert client.get("/api/v1/prompts", headers=headers).status_code == 403


def test_list_prompts_searches(client, factory):
    headers = token_headers(client, factory.researcher())
    client.post("/api/v1/prompts", json={"prompts": [{"text": "zebra 100% facts"}, {"text": "lion"}]}, headers=headers)
    out = client.get("/api/v1/prompts", params={"q": "ZEBRA 100%"}, headers=headers).json()
    assert out["total"] == 1 and out["items"][0]["text"] == "zebra 100% facts"


def test_post_task_from_text_returns_ids_in_order(client, factory, db):
    researcher = factory.researcher()
    headers = token_headers(client, researcher)
    completions = ["first", "second", "third", "fourth", "fifth"]
    body = {"prompt": "Tell a joke", "completions": completions, "model": "vllm-llama", "kind": "gold", "overlap": 2}
    resp = client.post("/api/v1/tasks", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    out = resp.json()
    assert [db.get(Completion, cid).text for cid in out["completion_ids"]] == completions
    task = db.get(RankingTask, out["id"])
    assert task.prompt_id == out["prompt_id"] and task.kind == TaskKind.gold and task.overlap == 2 and task.k == 5
    assert task.created_by_id == researcher.id
    prompt = db.get(Prompt, out["prompt_id"])
    assert prompt.text == "Tell a joke" and prompt.source == PromptSource.api
    assert db.get(Completion, out["completion_ids"][0]).model_name == "vllm-llama"
    # an existing prompt by id
    again = client.post("/api/v1/tasks", json={**body, "prompt": out["prompt_id"]}, headers=headers).json()
    assert again["prompt_id"] == out["prompt_id"] and again["id"] != out["id"]


def test_post_task_rejects_k_outside_4_to_9(client, factory, db):
    headers = token_headers(client, factory.researcher())
    before = (_count(db, Completion), _count(db, RankingTask), _count(db, Prompt))
    for k in (3, 10):
        body = {"prompt": f"K is {k}", "completions": [f"c{i}" for i in range(k)]}
        resp = client.post("/api/v1/tasks", json=body, headers=headers)
        assert resp.status_code == 422
        assert "4 to 9" in resp.json()["detail"]
    assert (_count(db, Completion), _count(db, RankingTask), _count(db, Prompt)) == before


def test_post_task_unknown_prompt_id_is_404(client, factory):
    headers = token_headers(client, factory.researcher())
    resp = client.post("/api/v1/tasks", json={"prompt": 987654, "completions": ["a"] * 4}, headers=headers)
    assert resp.status_code == 404 and "987654" in resp.json()["detail"]


def test_task_api_needs_csrf_for_cookie_sessions(client, factory):
    csrf = browser_login(client, factory.researcher())
    body = {"prompt": "csrf prompt", "completions": ["a", "b", "c", "d"]}
    assert client.post("/api/v1/tasks", json=body).status_code == 403
    assert client.post("/api/v1/tasks", json=body, headers={"X-CSRF-Token": csrf}).status_code == 201


def test_list_and_get_tasks(client, factory, db):
    headers = token_headers(client, factory.researcher())
    task = make_task(db, k=4, kind="eval", prompt_text="Findable walrus prompt")
    out = client.get("/api/v1/tasks", params={"q": "walrus", "kind": "eval"}, headers=headers).json()
    assert out["total"] == 1 and out["items"][0]["id"] == task.id and out["items"][0]["rankings"] == 0
    detail = client.get(f"/api/v1/tasks/{task.id}", headers=headers).json()
    assert detail["prompt"]["text"] == "Findable walrus prompt" and len(detail["completions"]) == 4
    assert client.get("/api/v1/tasks/99999999", headers=headers).status_code == 404


def test_post_task_with_nul_character_is_422_and_stores_nothing(client, factory, db):
    headers = token_headers(client, factory.researcher())
    before = db.scalar(select(func.count()).select_from(Completion))
    body = {"prompt": "NUL test prompt", "completions": ["a", "b\x00c", "d", "e"], "model": "m"}
    resp = client.post("/api/v1/tasks", json=body, headers=headers)
    assert resp.status_code == 422
    assert "completion 2 contains a NUL character" in resp.json()["detail"]
    assert db.scalar(select(func.count()).select_from(Completion)) == before
    assert db.scalar(select(Prompt).where(Prompt.text == "NUL test prompt")) is None
