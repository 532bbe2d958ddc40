"""One full round on a fresh install through the public API: a researcher starts it, the worker samples with the
SFT model, labelers rank over HTTP, and the worker trains the reward model, runs PPO and evaluates, each step
queued by the round when the one before it is done."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.deps import sessionmaker_dep, settings_dep
from app.main import create_app
from app.models import ModelKind, RankingTask, Role, TaskKind, User, UserStatus
from app.services import model_registry
from app.services.users import create_user
from tests.factories import PASSWORD, token_headers
from tests.worker.reward_jobs import run_worker

ROUND = {
    "sample": {"n_unlabeled": 12, "k": 4, "max_new_tokens": 8, "temperature": 1.0, "overlap": 2},
    "min_new_rankings": 20,
    "reward": {"heldout_labeler_share": 0.0, "batch_size": 4},
    "policy": {"steps": 2, "batch_size": 8, "minibatches": 2, "epochs": 1, "response_length": 6},
    "evaluate": {
        "max_prompts": 2,
        "samples_per_prompt": 2,
        "response_length": 6,
        "max_ppl_texts": 8,
        "human_eval": True,
    },
}


def _rank_all(client: TestClient, labelers: list[dict[str, str]]) -> int:
    """Labelers take turns; each ranks its task's outputs by length (a preference the RM can pick up)."""
    done, busy = 0, True
    while busy:
        busy = False
        for headers in labelers:
            nxt = client.get("/api/v1/labeling/next", headers=headers)
            if nxt.status_code != 200:
                continue
            body = nxt.json()
            order = sorted(body["completions"], key=lambda c: (-len(c["text"]), c["id"]))
            url = f"/api/v1/labeling/assignments/{body['assignment_id']}/ranking"
            payload = {"ranking": [[c["id"]] for c in order], "idempotency_key": f"r{body['assignment_id']}"}
            assert client.post(url, json=payload, headers=headers).status_code == 201
            done, busy = done + 1, True
    return done


def test_one_full_round(sessions, worker_settings, tiny_model_dir):
    with sessions.begin() as s:
        researcher = create_user(s, username="res", password=PASSWORD, role=Role.researcher)
        for i in range(3):
            create_user(s, username=f"lab{i}", password=PASSWORD, role=Role.labeler, status=UserStatus.active)
        model_registry.register_model(s, kind=ModelKind.sft, name="tiny-sft", path=tiny_model_dir)
    app = create_app(worker_settings)
    app.dependency_overrides[sessionmaker_dep] = lambda: sessions
    app.dependency_overrides[settings_dep] = lambda: worker_settings
    with TestClient(app) as client:
        headers = token_headers(client, researcher)
        prompts = [{"text": f"tell me about thing {n}", "split": ["train", "train", "validation", "eval"][n % 4]}
                   for n in range(12)]  # fmt: skip
        assert client.post("/api/v1/prompts", json={"prompts": prompts}, headers=headers).status_code == 201
        started = client.post("/api/v1/rounds", json=ROUND, headers=headers)
        assert started.status_code == 201, started.text
        round_id = started.json()["id"]

        run_worker(sessions, worker_settings)  # samples, then waits for rankings
        waiting = client.get(f"/api/v1/rounds/{round_id}", headers=headers).json()
        assert (waiting["status"], waiting["step"]) == ("running", "rank"), waiting
        with sessions() as s:
            labelers = [s.query(User).filter_by(username=f"lab{i}").one() for i in range(3)]
        assert _rank_all(client, [token_headers(client, u) for u in labelers]) >= 20

        run_worker(sessions, worker_settings)  # reward model -> PPO -> evaluation, one after the other
        done = client.get(f"/api/v1/rounds/{round_id}", headers=headers).json()
        assert (done["status"], done["step"], done["error"]) == ("succeeded", "done", None), done
        models = {m["id"]: m for m in client.get("/api/v1/models", headers=headers).json()}
    policy, reward = models[done["policy_model_id"]], models[done["reward_model_id"]]
    assert policy["kind"] == "policy" and reward["kind"] == "reward"
    assert policy["metrics"]["reward_version"] == reward["id"] and policy["parent_id"] == done["start_policy_id"]
    evaluation = policy["metrics"]["eval"][str(done["start_policy_id"])]
    assert evaluation["job_id"] == done["evaluate_job_id"] and 0.0 <= evaluation["rm_win_rate"] <= 1.0
    assert evaluation["reward_gain"] == pytest.approx(evaluation["policy_reward"] - evaluation["baseline_reward"])
    assert evaluation["alignment_tax"] == pytest.approx(
        evaluation["policy_perplexity"] / evaluation["baseline_perplexity"]
    )
    assert evaluation["split"] == "eval" and evaluation["prompts"] == 2
    _eval_tasks_mix_both_versions(sessions, policy["id"], done["start_policy_id"], evaluation["human_eval_tasks"])


def _eval_tasks_mix_both_versions(sessions, policy_id: int, sft_id: int, count: int) -> None:  # type: ignore[no-untyped-def]
    """The evaluation's human-eval tasks put 2 outputs of each version in one task of K = 4."""
    with sessions() as s:
        tasks = s.query(RankingTask).filter_by(kind=TaskKind.eval).all()
        versions = [sorted(item.completion.model_version_id for item in t.items) for t in tasks]
    assert count == len(tasks) >= 1
    assert all(v == sorted([policy_id, policy_id, sft_id, sft_id]) for v in versions)
