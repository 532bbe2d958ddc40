"""`processes: 2` trains the reward model under torchrun (DDP, gloo on CPU) to the model one process trains with
twice the gradient accumulation: the same batches in the same optimizer steps."""

from __future__ import annotations

import torch

from app.models import Job, JobKind
from app.services import jobs as job_service
from tests.worker.reward_jobs import ranks_saw_only_gpu_tensors, run_worker, seed_rankings, trained_weights

BASE = {"batch_size": 2, "learning_rate": 1e-3, "heldout_labeler_share": 0.0, "checkpoint_every": 2}


def test_two_processes_match_one_with_double_accumulation(sessions, worker_settings, tiny_model_dir, gpu_like_ranks):
    """Under the device policy of a GPU run: the ranks' collectives refuse CPU tensors as NCCL does."""
    seed_rankings(sessions, tiny_model_dir)
    with sessions.begin() as s:
        one = job_service.enqueue_job(s, kind=JobKind.train_reward, params={**BASE, "grad_accum_steps": 2}).id
        two = job_service.enqueue_job(s, kind=JobKind.train_reward, params={**BASE, "processes": 2}).id
    run_worker(sessions, worker_settings)
    single, distributed = trained_weights(sessions, one), trained_weights(sessions, two)
    for name in single:
        torch.testing.assert_close(distributed[name], single[name], rtol=1e-4, atol=1e-5)
    with sessions() as s:
        job = s.get(Job, two)
        assert "2 processes under torchrun" in job.log_tail
        losses = [p["loss/ranking"] for p in job.metrics if "loss/ranking" in p]
        assert losses and job.progress == 1.0
    ranks_saw_only_gpu_tensors(gpu_like_ranks, ranks=2)
