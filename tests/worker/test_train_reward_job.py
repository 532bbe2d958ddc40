"""The reward-model job through the public API on a fresh install: labelers rank over HTTP, a researcher queues
`train_reward` with empty params, `ranklab worker --once` (a real process) trains, evaluates and registers it."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from app.deps import sessionmaker_dep, settings_dep
from app.main import create_app
from app.models import Job, JobStatus, ModelKind, ModelVersion, Role, UserStatus
from app.services import model_registry
from app.services.users import create_user
from tests.factories import PASSWORD, token_headers

WORDS = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away", "sun", "is", "warm"]


def _completion(rng: random.Random, good: bool) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(3, 7))]
    if good:
        words.insert(rng.randrange(len(words)), "excellent")
    return " ".join(words)


def _seed_tasks(client: TestClient, headers: dict[str, str], rng: random.Random) -> None:
    """Prompts in the train and validation splits, each with 4 outputs of which 1 or 2 say 'excellent'."""
    prompts = [{"text": f"question {n}: tell me something", "split": "validation" if n % 5 == 0 else "train"}
               for n in range(40)]  # fmt: skip
    created = client.post("/api/v1/prompts", json={"prompts": prompts}, headers=headers)
    assert created.status_code == 201, created.text
    for n in range(40):
        good = rng.sample(range(4), rng.choice([1, 2]))
        task = {"prompt": prompts[n]["text"], "completions": [_completion(rng, i in good) for i in range(4)]}
        task |= {"overlap": 2}
        assert client.post("/api/v1/tasks", json=task, headers=headers).status_code == 201


def _rank_one(client: TestClient, headers: dict[str, str]) -> bool:
    """A careful labeler ranks its next task: outputs with the marker first (tied), the others after (tied)."""
    nxt = client.get("/api/v1/labeling/next", headers=headers)
    if nxt.status_code == 204:
        return False
    body = nxt.json()
    good = [c["id"] for c in body["completions"] if "excellent" in c["text"]]
    rest = [c["id"] for c in body["completions"] if "excellent" not in c["text"]]
    payload = {"ranking": [good, rest], "idempotency_key": f"k{body['assignment_id']}"}
    url = f"/api/v1/labeling/assignments/{body['assignment_id']}/ranking"
    assert client.post(url, json=payload, headers=headers).status_code == 201
    return True


def _rank_in_turns(client: TestClient, everyone: list[dict[str, str]]) -> int:
    """Labelers take one task each in turn until the queue is empty."""
    done, busy = 0, True
    while busy:
        turns = [_rank_one(client, headers) for headers in everyone]
        done, busy = done + sum(turns), any(turns)
    return done


@pytest.mark.slow
def test_rankings_to_a_registered_reward_model(committed_url, sessions, worker_settings, tiny_model_dir, tmp_path):
    with sessions.begin() as s:
        researcher = create_user(s, username="res", password=PASSWORD, role=Role.researcher)
        for i in range(5):
            create_user(s, username=f"lab{i}", password=PASSWORD, role=Role.labeler, status=UserStatus.active)
        sft = model_registry.register_model(s, kind=ModelKind.sft, name="tiny-sft", path=tiny_model_dir)
        sft_id = sft.id
    app = create_app(worker_settings)
    app.dependency_overrides[sessionmaker_dep] = lambda: sessions
    app.dependency_overrides[settings_dep] = lambda: worker_settings
    with TestClient(app) as client:
        headers = token_headers(client, researcher)
        _seed_tasks(client, headers, random.Random(0))
        with sessions() as s:
            labelers = [s.query(type(researcher)).filter_by(username=f"lab{i}").one() for i in range(5)]
        ranked = _rank_in_turns(client, [token_headers(client, u) for u in labelers])
        assert ranked == 80  # 40 tasks x overlap 2
        queued = client.post("/api/v1/jobs", json={"kind": "train_reward", "params": {}}, headers=headers)
        assert queued.status_code == 201, queued.text

        env = {**os.environ, "RANKLAB_DATABASE_URL": committed_url, "RANKLAB_DATA_DIR": str(worker_settings.data_dir)}
        cmd = [sys.executable, "-c", "from trainer.cli import main; main()", "worker", "--once", "--device", "cpu"]
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]

        job = client.get(f"/api/v1/jobs/{queued.json()['id']}", headers=headers).json()
        assert job["status"] == "succeeded", job["error"] or job["log_tail"]
        assert any("loss/ranking" in point for point in job["metrics"])
        models = client.get("/api/v1/models", headers=headers).json()
    reward = [m for m in models if m["kind"] == "reward"]
    assert len(reward) == 1 and reward[0]["parent_id"] == sft_id and reward[0]["job_id"] == job["id"]
    metrics = reward[0]["metrics"]
    assert metrics["val_pairs"] > 0 and 0.0 <= metrics["val_accuracy"] <= 1.0
    assert metrics["held_out_labelers"] == 1 and "val_held_out_labeler_accuracy" in metrics
    assert metrics["train_tasks"] + metrics["val_tasks"] <= 40 and metrics["val_tasks"] >= 1
    with sessions() as s:
        stored = s.get(ModelVersion, reward[0]["id"])
        assert stored is not None and s.get(Job, job["id"]).status == JobStatus.succeeded
        folder = Path(stored.path)
    _loads_and_scores_identically(folder)


def _loads_and_scores_identically(folder: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from trainer.common.chat import as_messages
    from trainer.common.reward_model import OFFSET_KEY, encode_completion, load_reward_model, score_sequences

    hf = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ours, _ = load_reward_model(folder)
    texts = ["the cat sat excellent", "dog ran far away"]
    seqs = [encode_completion(tokenizer, as_messages("question 1: tell me something"), t, 512) for t in texts]
    with torch.no_grad():
        raw = torch.cat([hf(input_ids=torch.tensor([s])).logits[:, 0] for s in seqs])
    offset = float(getattr(hf.config, OFFSET_KEY))
    torch.testing.assert_close(score_sequences(ours, seqs, pad_token_id=int(tokenizer.pad_token_id)), raw - offset)
