"""DPO through the public API and the worker on a fresh install (SQLite, or PostgreSQL when the suite runs on it):
rankings -> `train_dpo` -> a registered policy that `AutoModelForCausalLM` loads -> a sampling job from it -> an
evaluation against its SFT parent (no reward model exists); a two-round DPO loop ends `done`; a stopped job resumes
to the uninterrupted result; `processes: 2` matches one process with twice the accumulation."""

from __future__ import annotations

import pytest
import torch
from fastapi.testclient import TestClient

from app.deps import sessionmaker_dep, settings_dep
from app.main import create_app
from app.models import Job, JobKind, JobStatus, ModelKind, Role, User, UserStatus
from app.services import jobs as job_service
from app.services import model_registry
from app.services.users import create_user
from tests.factories import PASSWORD, token_headers
from tests.worker.reward_jobs import ranks_saw_only_gpu_tensors, run_worker, seed_rankings, trained_weights
from tests.worker.test_round_end_to_end import _rank_all
from trainer.dpo import job as dpo_job

DPO = {"learning_rate": 1e-3, "beta": 0.5, "batch_size": 2, "epochs": 2, "kl_prompts": 4, "kl_response_length": 6}


@pytest.fixture
def api(sessions, worker_settings, tiny_model_dir):
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
        with sessions() as s:
            users = [s.query(User).filter_by(username=f"lab{i}").one() for i in range(3)]
        labelers = [token_headers(client, u) for u in users]
        prompts = [{"text": f"tell me about thing {n}", "split": ["train", "train", "validation", "eval"][n % 4]}
                   for n in range(12)]  # fmt: skip
        assert client.post("/api/v1/prompts", json={"prompts": prompts}, headers=headers).status_code == 201
        yield client, headers, labelers


def _job(client: TestClient, headers: dict, kind: str, params: dict) -> int:
    queued = client.post("/api/v1/jobs", json={"kind": kind, "params": params}, headers=headers)
    assert queued.status_code == 201, queued.text
    return int(queued.json()["id"])


def test_rankings_to_a_dpo_policy_that_samples_and_is_evaluated(api, sessions, worker_settings):
    client, headers, labelers = api
    _job(client, headers, "sample", {"n_unlabeled": 12, "k": 4, "max_new_tokens": 8, "overlap": 2})
    run_worker(sessions, worker_settings)
    assert _rank_all(client, labelers) == 24
    dpo = _job(client, headers, "train_dpo", DPO)
    run_worker(sessions, worker_settings)
    job = client.get(f"/api/v1/jobs/{dpo}", headers=headers).json()
    assert job["status"] == "succeeded", job["error"] or job["log_tail"]
    assert any("loss/dpo" in point for point in job["metrics"]) and "implicit-reward accuracy" in job["log_tail"]
    assert "memory plan: micro-batch" in job["log_tail"]
    models = {m["id"]: m for m in client.get("/api/v1/models", headers=headers).json()}
    [policy] = [m for m in models.values() if m["kind"] == "policy"]
    metrics = policy["metrics"]
    assert metrics["method"] == "dpo" and metrics["loss_type"] == "dpo" and metrics["kl"] is not None
    assert metrics["train_tasks"] >= 1 and metrics["val_tasks"] >= 1 and 0 <= metrics["val_accuracy"] <= 1
    assert models[policy["parent_id"]]["kind"] == "sft" and metrics["reference_version"] == policy["parent_id"]

    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(policy["path"])
    sample = _job(client, headers, "sample", {"split": "train", "k": 4, "max_new_tokens": 6,
                                              "policy_version": policy["id"]})  # fmt: skip
    evaluate = _job(client, headers, "evaluate", {"policy_version": policy["id"], "max_prompts": 2,
                                                  "samples_per_prompt": 2, "response_length": 6})  # fmt: skip
    run_worker(sessions, worker_settings)
    for job_id in (sample, evaluate):
        ended = client.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
        assert ended["status"] == "succeeded", ended["error"] or ended["log_tail"]
    policy = next(m for m in client.get("/api/v1/models", headers=headers).json() if m["id"] == policy["id"])
    evaluation = policy["metrics"]["eval"][str(policy["parent_id"])]
    assert evaluation["reward_version"] is None and evaluation["kl"] >= -1.0 and "rm_win_rate" not in evaluation


def test_a_two_round_dpo_loop_ends_done(api, sessions, worker_settings):
    client, headers, labelers = api
    params = {"sample": {"n_unlabeled": 4, "k": 4, "max_new_tokens": 6, "overlap": 1}, "min_new_rankings": 4,
              "policy": {"method": "dpo", **DPO}, "evaluate": {"max_prompts": 2, "samples_per_prompt": 2,
                                                                "response_length": 6}}  # fmt: skip
    policies = []
    for _ in range(2):
        started = client.post("/api/v1/rounds", json=params, headers=headers)
        assert started.status_code == 201, started.text
        round_id = started.json()["id"]
        run_worker(sessions, worker_settings)  # samples
        assert _rank_all(client, labelers) >= 4
        run_worker(sessions, worker_settings)  # DPO -> evaluation
        done = client.get(f"/api/v1/rounds/{round_id}", headers=headers).json()
        assert (done["status"], done["step"], done["error"]) == ("succeeded", "done", None), done
        assert done["reward_job_id"] is None and done["reward_model_id"] is None
        policies.append(done)
    # the second round started from the first round's policy
    assert policies[1]["start_policy_id"] == policies[0]["policy_model_id"]
    with sessions() as s:
        kinds = {j.kind for j in s.query(Job).all()}
    assert JobKind.train_reward not in kinds and JobKind.train_dpo in kinds


PARAMS = {
    "checkpoint_every": 1,
    "batch_size": 2,
    "learning_rate": 1e-3,
    "epochs": 2,
    "kl_prompts": 0,
    "policy_version": 1,
}
"""Every job starts from SFT v1 (by default a job starts from the newest policy: the one the job before made)."""


def test_a_stopped_dpo_job_resumes_to_the_uninterrupted_result(sessions, worker_settings, tiny_model_dir, monkeypatch):
    seed_rankings(sessions, tiny_model_dir)
    with sessions.begin() as s:
        straight = job_service.enqueue_job(s, kind=JobKind.train_dpo, params=PARAMS).id
    run_worker(sessions, worker_settings)
    with sessions.begin() as s:
        stopped = job_service.enqueue_job(s, kind=JobKind.train_dpo, params=PARAMS).id
    real = dpo_job.Reporter.on_metrics

    def stop_after_three_steps(self, total):  # type: ignore[no-untyped-def]
        report = real(self, total)

        def wrapped(step, metrics):  # type: ignore[no-untyped-def]
            report(step, metrics)
            if step == 3:
                self.ctx.stop.set()

        return wrapped

    monkeypatch.setattr(dpo_job.Reporter, "on_metrics", stop_after_three_steps)
    run_worker(sessions, worker_settings)
    with sessions() as s:
        assert s.get(Job, stopped).status == JobStatus.queued
    monkeypatch.setattr(dpo_job.Reporter, "on_metrics", real)
    run_worker(sessions, worker_settings)
    first, resumed = trained_weights(sessions, straight), trained_weights(sessions, stopped)
    for name in first:
        torch.testing.assert_close(resumed[name], first[name], rtol=0, atol=1e-6)
    with sessions() as s:
        assert "resuming" in s.get(Job, stopped).log_tail


def test_two_processes_match_one_with_double_accumulation(sessions, worker_settings, tiny_model_dir, gpu_like_ranks):
    seed_rankings(sessions, tiny_model_dir)
    base = {**PARAMS, "epochs": 1}
    with sessions.begin() as s:
        one = job_service.enqueue_job(s, kind=JobKind.train_dpo, params={**base, "grad_accum_steps": 2}).id
        two = job_service.enqueue_job(s, kind=JobKind.train_dpo, params={**base, "processes": 2}).id
    run_worker(sessions, worker_settings)
    single, distributed = trained_weights(sessions, one), trained_weights(sessions, two)
    for name in single:
        torch.testing.assert_close(distributed[name], single[name], rtol=1e-4, atol=1e-5)
    with sessions() as s:
        assert "2 processes under torchrun" in s.get(Job, two).log_tail
    ranks_saw_only_gpu_tensors(gpu_like_ranks, ranks=2)
