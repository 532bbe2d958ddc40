"""The memory plan through the job path: the choice is in the job log, and a budget nothing fits fails the job at
once with the numbers."""

from __future__ import annotations

from app.models import JobKind, JobStatus
from tests.worker.conftest import run_job_once
from tests.worker.reward_jobs import seed_rankings

SMALL_PPO = {"steps": 1, "batch_size": 4, "minibatches": 2, "epochs": 1, "response_length": 4}


def test_reward_and_ppo_jobs_log_their_plan_or_fail_at_once(sessions, worker_settings, tiny_model_dir):
    seed_rankings(sessions, tiny_model_dir)
    refused = run_job_once(sessions, worker_settings, JobKind.train_reward, {"max_memory_gb": 0.0001})
    assert refused.status == JobStatus.failed
    assert (
        "not enough memory: micro-batch 1" in refused.error and "0.000 GB is available (max_memory_gb)" in refused.error
    )
    assert not [p for p in refused.metrics or [] if "loss/ranking" in p]  # no training step ran

    params = {"heldout_labeler_share": 0.0, "batch_size": 4, "max_memory_gb": 8.0}
    rm_job = run_job_once(sessions, worker_settings, JobKind.train_reward, params)
    assert rm_job.status == JobStatus.succeeded, rm_job.error or rm_job.log_tail
    assert "memory plan: micro-batch 4 without activation checkpointing, estimated" in rm_job.log_tail
    assert "of 8.000 GB (max_memory_gb)" in rm_job.log_tail

    refused = run_job_once(sessions, worker_settings, JobKind.train_policy, {**SMALL_PPO, "max_memory_gb": 0.0001})
    assert refused.status == JobStatus.failed and "not enough memory: micro-batch 1" in refused.error
    ppo = run_job_once(sessions, worker_settings, JobKind.train_policy, SMALL_PPO)
    assert ppo.status == JobStatus.succeeded, ppo.error or ppo.log_tail
    assert "memory plan: micro-batch 2 without activation checkpointing" in ppo.log_tail
    assert "(available RAM)" in ppo.log_tail
