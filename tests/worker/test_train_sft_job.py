"""Step 1 of the method on a fresh install, through the public API and the worker (SQLite, or PostgreSQL when the
suite runs on it): a file mixing the four prompt shapes (a bad line named first), demonstrations written and
reviewed, `train_sft` registering an `sft` version that `AutoModelForCausalLM` loads, a sampling job from it on a
three-turn conversation, and the pairs export of multi-turn rankings training TRL's RewardTrainer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.deps import sessionmaker_dep, settings_dep
from app.main import create_app
from app.models import JobKind, JobStatus, ModelKind, Role, UserStatus
from app.services import model_registry
from app.services.users import create_user
from tests.factories import PASSWORD, token_headers
from tests.worker.conftest import run_job_once

THREE_TURNS = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name a prime."},
    {"role": "assistant", "content": "Seven."},
    {"role": "user", "content": "And another one?"},
]


def _mixed_file(n: int) -> list[dict]:
    lines: list[dict] = []
    for i in range(n):
        split = "validation" if i % 4 == 0 else "train"
        shape = i % 4
        if shape == 0:
            lines.append({"text": f"plain prompt {i}: say hello", "split": split})
        elif shape == 1:
            lines.append(
                {"messages": [*THREE_TURNS[:3], {"role": "user", "content": f"another one, {i}?"}], "split": split}
            )
        elif shape == 2:
            lines.append({"conversations": [{"from": "human", "value": f"sharegpt prompt {i}"}], "split": split})
        else:
            lines.append({"chosen": f"\n\nHuman: hh prompt {i}\n\nAssistant: an answer", "split": split})
    return lines


@pytest.fixture
def install(committed_url, sessions, worker_settings, tiny_model_dir):
    with sessions.begin() as s:
        researcher = create_user(s, username="res", password=PASSWORD, role=Role.researcher)
        labelers = [
            create_user(s, username=f"lab{i}", password=PASSWORD, role=Role.labeler, status=UserStatus.active)
            for i in range(2)
        ]
        base = model_registry.register_model(s, kind=ModelKind.base, name="tiny-base", path=tiny_model_dir)
        ids = (researcher.id, [u.id for u in labelers], base.id)
    app = create_app(worker_settings)
    app.dependency_overrides[sessionmaker_dep] = lambda: sessions
    app.dependency_overrides[settings_dep] = lambda: worker_settings
    with TestClient(app) as client:
        yield client, researcher, labelers, ids[2]


def _upload(client: TestClient, headers: dict, lines: list) -> object:
    body = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines).encode()
    return client.post("/api/v1/prompts/import", files={"file": ("prompts.jsonl", body)}, headers=headers)


@pytest.mark.slow
def test_demonstrations_to_a_registered_sft_model_and_its_samples(install, sessions, worker_settings, tmp_path):
    client, researcher, labelers, base_id = install
    headers = token_headers(client, researcher)
    lines = _mixed_file(24)
    bad = _upload(client, headers, [*lines, {"messages": THREE_TURNS[:3]}])
    assert bad.status_code == 422 and "line 25" in bad.json()["detail"]
    assert client.get("/api/v1/prompts", headers=headers).json()["total"] == 0  # nothing half-imported
    created = _upload(client, headers, lines)
    assert created.status_code == 201, created.text
    prompt_ids = created.json()["ids"]
    assert len(prompt_ids) == 24

    # demonstrations: every prompt gets one, the two labelers write them, the researcher reviews
    tasks = client.post("/api/v1/demonstrations/tasks", json={"prompt_ids": prompt_ids}, headers=headers)
    assert tasks.status_code == 201 and tasks.json()["created"] == 24
    lab_headers = [token_headers(client, u) for u in labelers]
    written = 0
    while True:
        turn = [client.get("/api/v1/labeling/next", params={"type": "demonstration"}, headers=h) for h in lab_headers]
        got = [(h, r.json()) for h, r in zip(lab_headers, turn, strict=True) if r.status_code == 200]
        if not got:
            break
        for h, a in got:
            answer = {"content": "Hello! rank the answers", "idempotency_key": f"d{a['assignment_id']}"}
            url = f"/api/v1/labeling/assignments/{a['assignment_id']}/demonstration"
            assert client.post(url, json=answer, headers=h).status_code == 201
            written += 1
    assert written == 24
    queue = client.get("/api/v1/demonstrations", params={"status": "submitted", "limit": 100}, headers=headers)
    for i, demo in enumerate(queue.json()["items"]):
        review = {"action": "accept"} if i % 6 else {"action": "reject", "reason": "too short"}
        assert (
            client.post(f"/api/v1/demonstrations/{demo['id']}/review", json=review, headers=headers).status_code == 200
        )

    # train_sft with empty params: the newest base model, packed batches
    params = {"epochs": 3, "learning_rate": 1e-3, "batch_size": 4}
    job = run_job_once(sessions, worker_settings, JobKind.train_sft, params)
    assert job.status == JobStatus.succeeded, job.error or job.log_tail
    assert any("loss/sft" in point for point in job.metrics) and "validation loss" in job.log_tail
    assert "memory plan: micro-batch" in job.log_tail
    models = client.get("/api/v1/models", headers=headers).json()
    [sft] = [m for m in models if m["kind"] == "sft"]
    assert sft["parent_id"] == base_id and sft["job_id"] == job.id
    metrics = sft["metrics"]
    assert metrics["method"] == "sft" and metrics["data"]["demonstrations"] == 20  # 4 rejected
    assert metrics["data"]["train"] + metrics["data"]["validation"] == 20 and metrics["data"]["validation"] >= 1
    assert metrics["val_loss"] < metrics["base_val_loss"]  # it learned the answers it was shown
    assert math.isclose(metrics["val_perplexity"], math.exp(metrics["val_loss"]), rel_tol=1e-4)

    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(sft["path"])  # a plain Hugging Face folder

    # the next sampling job can sample from it, on a three-turn conversation
    conv = client.post(
        "/api/v1/prompts", json={"prompts": [{"messages": THREE_TURNS, "split": "train"}]}, headers=headers
    )
    conv_id = conv.json()["ids"][0]
    sample = run_job_once(
        sessions, worker_settings, JobKind.sample,
        {"prompt_ids": [conv_id], "k": 4, "max_new_tokens": 8, "policy_version": sft["id"]},
    )  # fmt: skip
    assert sample.status == JobStatus.succeeded, sample.error or sample.log_tail
    tasks_now = client.get("/api/v1/tasks", params={"q": "And another one?"}, headers=headers).json()["items"]
    [ranking_task] = [t for t in tasks_now if t["prompt_id"] == conv_id]
    detail = client.get(f"/api/v1/tasks/{ranking_task['id']}", headers=headers).json()
    assert detail["prompt"]["messages"] == THREE_TURNS and len(detail["completions"]) == 4

    # a labeler ranks the three-turn task; the pairs export carries the conversation and trains TRL's RewardTrainer
    nxt = client.get("/api/v1/labeling/next", params={"type": "ranking"}, headers=lab_headers[0]).json()
    assert nxt["prompt"]["messages"] == THREE_TURNS
    order = [[c["id"]] for c in nxt["completions"]]
    sent = client.post(f"/api/v1/labeling/assignments/{nxt['assignment_id']}/ranking",
                       json={"ranking": order, "idempotency_key": "r1"}, headers=lab_headers[0])  # fmt: skip
    assert sent.status_code == 201, sent.text
    export = client.get("/api/v1/export/comparisons", headers=headers).text.splitlines()
    pairs = [json.loads(line) for line in export]
    assert len(pairs) == 6 and all(p["prompt"] == THREE_TURNS for p in pairs)
    _reward_trainer_trains_on(pairs, Path(sft["path"]), tmp_path)


def _reward_trainer_trains_on(pairs: list[dict], model_dir: Path, tmp_path: Path) -> None:
    from datasets import load_dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    dataset = load_dataset("json", data_files=str(path), split="train")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    args = RewardConfig(output_dir=str(tmp_path / "rm"), max_steps=2, per_device_train_batch_size=2, report_to=[],
                        save_strategy="no", use_cpu=True, disable_tqdm=True)  # fmt: skip
    trainer = RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    assert len(trainer.train_dataset) == 6 and math.isfinite(trainer.train().training_loss)
