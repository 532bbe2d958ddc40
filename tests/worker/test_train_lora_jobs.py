"""LoRA through the job path: `train_reward` and `train_policy` with `lora` train adapters on the tiny model and
register plain Hugging Face folders (adapters merged, the adapter beside them in `adapter/`) that the usual loaders
read; PPO's reference is the policy with its adapters off."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from app.models import Job, JobKind, JobStatus, ModelKind, ModelVersion
from app.services import jobs as job_service
from tests.worker.conftest import run_job_once
from tests.worker.reward_jobs import run_worker, seed_rankings, trained_weights
from trainer.common.lora import ADAPTER_DIR
from trainer.common.reward_model import load_reward_model
from trainer.reward import job as reward_job

LORA = {"r": 4, "alpha": 8}
SMALL_PPO = {"steps": 2, "batch_size": 4, "minibatches": 2, "epochs": 1, "response_length": 4, "checkpoint_every": 1}


def _version(sessions, model_id: int) -> ModelVersion:  # type: ignore[no-untyped-def]
    with sessions() as s:
        version = s.get(ModelVersion, model_id)
        s.expunge(version)
        return version


def test_reward_and_ppo_jobs_with_lora_register_merged_versions(sessions, worker_settings, tiny_model_dir):
    seed_rankings(sessions, tiny_model_dir)
    rm_job = run_job_once(
        sessions, worker_settings, JobKind.train_reward,
        {"heldout_labeler_share": 0.0, "lora": LORA, "learning_rate": 1e-3},
    )  # fmt: skip
    assert rm_job.status == JobStatus.succeeded, rm_job.error or rm_job.log_tail
    assert "LoRA: " in rm_job.log_tail and "(the score head fully)" in rm_job.log_tail
    reward = _version(sessions, rm_job.output_model_id)
    assert reward.kind == ModelKind.reward
    rm_folder = Path(reward.path)
    assert (rm_folder / ADAPTER_DIR / "adapter_config.json").is_file()
    weights = load_file(rm_folder / "model.safetensors")
    assert not any("lora" in k or "modules_to_save" in k for k in weights)  # merged: plain HF names
    start = load_file(tiny_model_dir / "model.safetensors")
    assert any(not torch.equal(weights[k], start[k]) for k in start if k in weights)  # the adapters moved weights
    loaded, _ = load_reward_model(rm_folder)
    assert loaded.score.weight.shape[0] == 1

    ppo_job = run_job_once(sessions, worker_settings, JobKind.train_policy, {**SMALL_PPO, "lora": LORA})
    assert ppo_job.status == JobStatus.succeeded, ppo_job.error or ppo_job.log_tail
    assert "reference: the policy with its adapters off" in ppo_job.log_tail
    policy = _version(sessions, ppo_job.output_model_id)
    assert policy.kind == ModelKind.policy and policy.metrics["reward_version"] == reward.id
    folder = Path(policy.path)
    assert (folder / ADAPTER_DIR / "adapter_model.safetensors").is_file()
    trained = load_file(folder / "model.safetensors")
    assert set(trained) == set(start)  # the policy's own layout, no adapter weights
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.vocab_size == trained["lm_head.weight"].shape[0]
    assert [p["step"] for p in ppo_job.metrics if "objective/kl" in p][-1] == 2


def test_sft_and_dpo_jobs_with_lora_register_merged_versions(sessions, worker_settings, tiny_model_dir):
    seed_rankings(sessions, tiny_model_dir)
    start = load_file(tiny_model_dir / "model.safetensors")
    sft_params = {"include_best_ranked": True, "epochs": 1, "batch_size": 4, "lora": LORA, "learning_rate": 1e-3}
    sft_job = run_job_once(sessions, worker_settings, JobKind.train_sft, sft_params)
    assert sft_job.status == JobStatus.succeeded, sft_job.error or sft_job.log_tail
    assert "LoRA: " in sft_job.log_tail
    sft = _version(sessions, sft_job.output_model_id)
    assert sft.kind == ModelKind.sft and (Path(sft.path) / ADAPTER_DIR / "adapter_config.json").is_file()
    assert set(load_file(Path(sft.path) / "model.safetensors")) == set(start)
    AutoModelForCausalLM.from_pretrained(sft.path)

    dpo_params = {"policy_version": sft.id, "lora": LORA, "learning_rate": 1e-3, "batch_size": 2, "kl_prompts": 2,
                  "kl_response_length": 4}  # fmt: skip
    dpo_job = run_job_once(sessions, worker_settings, JobKind.train_dpo, dpo_params)
    assert dpo_job.status == JobStatus.succeeded, dpo_job.error or dpo_job.log_tail
    assert "reference: the policy with its adapters off" in dpo_job.log_tail
    policy = _version(sessions, dpo_job.output_model_id)
    assert policy.kind == ModelKind.policy and (Path(policy.path) / ADAPTER_DIR).is_dir()
    trained = load_file(Path(policy.path) / "model.safetensors")
    assert set(trained) == set(start)
    assert policy.metrics["kl"] is not None and policy.metrics["kl"] > -1e-3  # KL to the base, adapters off
    AutoModelForCausalLM.from_pretrained(policy.path)


def test_a_stopped_lora_reward_job_resumes_to_the_uninterrupted_result(
    sessions, worker_settings, tiny_model_dir, monkeypatch
):
    """The checkpoint holds the adapters and the head's trained copy (LoRA dropout on: the RNG resumes too)."""
    seed_rankings(sessions, tiny_model_dir)
    params = {"checkpoint_every": 1, "batch_size": 4, "learning_rate": 1e-3, "heldout_labeler_share": 0.0,
              "lora": {"r": 4, "dropout": 0.1}}  # fmt: skip
    with sessions.begin() as s:
        straight = job_service.enqueue_job(s, kind=JobKind.train_reward, params=params).id
        stopped = job_service.enqueue_job(s, kind=JobKind.train_reward, params=params).id
    real = reward_job.Reporter.on_metrics

    def stop_after_two_steps(self, total):  # type: ignore[no-untyped-def]
        report = real(self, total)

        def wrapped(step, metrics):  # type: ignore[no-untyped-def]
            report(step, metrics)
            if step == 2 and self.ctx.job_id == stopped:
                self.ctx.stop.set()

        return wrapped

    monkeypatch.setattr(reward_job.Reporter, "on_metrics", stop_after_two_steps)
    run_worker(sessions, worker_settings)
    with sessions() as s:
        assert s.get(Job, stopped).status == JobStatus.queued
    monkeypatch.setattr(reward_job.Reporter, "on_metrics", real)
    run_worker(sessions, worker_settings)
    first, resumed = trained_weights(sessions, straight), trained_weights(sessions, stopped)
    assert first.keys() == resumed.keys()
    for name in first:
        torch.testing.assert_close(resumed[name], first[name], rtol=0, atol=1e-6)
    with sessions() as s:
        assert "resuming" in s.get(Job, stopped).log_tail
