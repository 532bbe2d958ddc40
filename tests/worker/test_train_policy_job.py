"""The PPO job through the worker: a tiny SFT model, a reward model trained on rankings, then `train_policy`
registers a `policy` version that names its reward version; a stopped run resumes; bad references are refused."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from app.models import Job, JobKind, JobStatus, ModelKind, ModelVersion
from app.services import jobs as job_service
from tests.worker.reward_jobs import ranks_saw_only_gpu_tensors, run_worker, seed_rankings

SMALL = {"steps": 3, "batch_size": 8, "minibatches": 2, "epochs": 2, "response_length": 6, "checkpoint_every": 1}


def _job(sessions, job_id: int) -> Job:  # type: ignore[no-untyped-def]
    with sessions() as s:
        job = s.get(Job, job_id)
        s.expunge(job)
        return job


def _ran_under_torchrun(sessions, job_id: int) -> None:  # type: ignore[no-untyped-def]
    """A 2-process PPO job (gloo): the ranks' metrics reach the job, rank 0's policy is registered."""
    job = _job(sessions, job_id)
    assert job.status == JobStatus.succeeded, job.error or job.log_tail
    assert "2 processes under torchrun" in job.log_tail
    assert [p["step"] for p in job.metrics if "objective/kl" in p][-1] == 3
    with sessions() as s:
        policy = s.get(ModelVersion, job.output_model_id)
        assert policy.kind == ModelKind.policy and policy.metrics["processes"] == 2 and policy.metrics["steps"] == 3
        assert (Path(policy.path) / "model.safetensors").is_file()


def test_ppo_job_registers_a_policy_trained_against_the_reward_model(
    sessions, worker_settings, tiny_model_dir, gpu_like_ranks
):
    """In one worker run: PPO in this process (with PPO-ptx), and PPO on two processes under torchrun with the device
    policy of a GPU run (the ranks' collectives refuse CPU tensors, as NCCL does)."""
    seed_rankings(sessions, tiny_model_dir)
    with sessions.begin() as s:
        rm_job = job_service.enqueue_job(s, kind=JobKind.train_reward, params={"heldout_labeler_share": 0.0}).id
    run_worker(sessions, worker_settings)
    with sessions.begin() as s:
        ppo_job = job_service.enqueue_job(s, kind=JobKind.train_policy, params={**SMALL, "ptx_coef": 0.5}).id
        ddp_job = job_service.enqueue_job(s, kind=JobKind.train_policy, params={**SMALL, "processes": 2}).id
    run_worker(sessions, worker_settings)
    _ran_under_torchrun(sessions, ddp_job)
    ranks_saw_only_gpu_tensors(gpu_like_ranks, ranks=2)
    rm, ppo = _job(sessions, rm_job), _job(sessions, ppo_job)
    assert rm.status == JobStatus.succeeded, rm.error
    assert ppo.status == JobStatus.succeeded, ppo.error or ppo.log_tail
    with sessions() as s:
        policy = s.get(ModelVersion, ppo.output_model_id)
        sft = s.query(ModelVersion).filter_by(kind=ModelKind.sft).one()
        assert policy.kind == ModelKind.policy and policy.parent_id == sft.id
        assert policy.metrics["reward_version"] == rm.output_model_id and policy.metrics["sft_version"] == sft.id
        assert policy.metrics["steps"] == 3 and policy.metrics["kl"] is not None
        folder = Path(policy.path)
    points = [p for p in ppo.metrics if "objective/kl" in p]
    assert [p["step"] for p in points][-1] == 3 and all("loss/ptx" in p for p in points)
    trained, start = load_file(folder / "model.safetensors"), load_file(tiny_model_dir / "model.safetensors")
    assert any(not torch.equal(trained[k], start[k]) for k in start)
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(folder).config.vocab_size == trained["lm_head.weight"].shape[0]
