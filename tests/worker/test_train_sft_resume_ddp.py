"""`train_sft` stopped mid-way (worker SIGTERM -> checkpoint -> back to the queue) resumes to the same model as an
uninterrupted job, even when demonstrations are accepted in between; `processes: 2` (torchrun, DDP, gloo on CPU
under a GPU run's device policy) trains the model one process trains with twice the gradient accumulation."""

from __future__ import annotations

import torch

from app.models import (
    Demonstration,
    DemonstrationOrigin,
    DemonstrationStatus,
    Job,
    JobKind,
    JobStatus,
    ModelKind,
    Prompt,
    RankingTask,
    Split,
    TaskType,
)
from app.services import jobs as job_service
from app.services import model_registry
from app.services.prompts import get_or_create_prompt
from tests.factories import Factory
from tests.worker.reward_jobs import ranks_saw_only_gpu_tensors, run_worker, trained_weights
from trainer.sft import job as sft_job

PARAMS = {"checkpoint_every": 1, "batch_size": 2, "learning_rate": 1e-3, "epochs": 2}


def seed_demonstrations(sessions, tiny_model_dir, n: int = 16, start: int = 0) -> None:
    """Accepted demonstrations of multi-turn conversations (every 4th prompt in validation); tiny base v1."""
    with sessions.begin() as s:
        if start == 0:
            model_registry.register_model(s, kind=ModelKind.base, name="tiny", path=tiny_model_dir)
        labeler = Factory(s).labeler()
        for i in range(start, start + n):
            messages = [{"role": "user", "content": f"hello {i}"}, {"role": "assistant", "content": "hi"},
                        {"role": "user", "content": f"count to {i % 5}"}]  # fmt: skip
            prompt, _ = get_or_create_prompt(s, messages=messages)
            prompt.split = Split.validation if i % 4 == 0 else Split.train
            task = RankingTask(prompt_id=prompt.id, task_type=TaskType.demonstration, k=0)
            s.add(task)
            s.flush()
            s.add(Demonstration(task_id=task.id, prompt_id=prompt.id, labeler_id=labeler.id,
                                content=" ".join(str(j) for j in range(i % 5 + 1)), origin=DemonstrationOrigin.written,
                                status=DemonstrationStatus.accepted, idempotency_key=f"d{i}"))  # fmt: skip


def test_a_stopped_sft_job_resumes_to_the_uninterrupted_result(sessions, worker_settings, tiny_model_dir, monkeypatch):
    seed_demonstrations(sessions, tiny_model_dir)
    with sessions.begin() as s:
        straight = job_service.enqueue_job(s, kind=JobKind.train_sft, params=PARAMS).id
    run_worker(sessions, worker_settings)
    with sessions.begin() as s:
        stopped = job_service.enqueue_job(s, kind=JobKind.train_sft, params=PARAMS).id
    real = sft_job.Reporter.on_metrics

    def stop_after_three_steps(self, total):  # type: ignore[no-untyped-def]
        report = real(self, total)

        def wrapped(step, metrics):  # type: ignore[no-untyped-def]
            report(step, metrics)
            if step == 3:
                self.ctx.stop.set()  # what SIGTERM does to the worker

        return wrapped

    monkeypatch.setattr(sft_job.Reporter, "on_metrics", stop_after_three_steps)
    run_worker(sessions, worker_settings)
    with sessions() as s:
        job = s.get(Job, stopped)
        assert job.status == JobStatus.queued and job.attempts == 0
    seed_demonstrations(sessions, tiny_model_dir, n=4, start=100)  # accepted meanwhile: not in this job's data
    monkeypatch.setattr(sft_job.Reporter, "on_metrics", real)
    run_worker(sessions, worker_settings)
    first, resumed = trained_weights(sessions, straight), trained_weights(sessions, stopped)
    for name in first:
        torch.testing.assert_close(resumed[name], first[name], rtol=0, atol=1e-6)
    with sessions() as s:
        assert "resuming" in s.get(Job, stopped).log_tail
        assert s.query(Prompt).count() == 20


def test_two_processes_match_one_with_double_accumulation(sessions, worker_settings, tiny_model_dir, gpu_like_ranks):
    seed_demonstrations(sessions, tiny_model_dir)
    base = {**PARAMS, "epochs": 1}
    with sessions.begin() as s:
        one = job_service.enqueue_job(s, kind=JobKind.train_sft, params={**base, "grad_accum_steps": 2}).id
        two = job_service.enqueue_job(s, kind=JobKind.train_sft, params={**base, "processes": 2}).id
    run_worker(sessions, worker_settings)
    single, distributed = trained_weights(sessions, one), trained_weights(sessions, two)
    for name in single:
        torch.testing.assert_close(distributed[name], single[name], rtol=1e-4, atol=1e-5)
    with sessions() as s:
        assert "2 processes under torchrun" in s.get(Job, two).log_tail
    ranks_saw_only_gpu_tensors(gpu_like_ranks, ranks=2)
