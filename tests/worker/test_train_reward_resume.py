"""A reward-model job stopped mid-way (worker SIGTERM -> checkpoint -> back to the queue) resumes to the same model
as an uninterrupted job, even when rankings arrive and a labeler is paused in between."""

from __future__ import annotations

import torch

from app.models import Job, JobKind, JobStatus, User, UserStatus
from app.services import jobs as job_service
from tests.agreement.helpers import add_ranking, make_task
from tests.factories import Factory
from tests.worker.reward_jobs import run_worker, seed_rankings, trained_weights
from trainer.reward import job as reward_job

PARAMS = {"checkpoint_every": 1, "batch_size": 4, "learning_rate": 1e-3, "heldout_labeler_share": 0.0}


def test_stopped_job_resumes_to_the_uninterrupted_result(sessions, worker_settings, tiny_model_dir, monkeypatch):
    seed_rankings(sessions, tiny_model_dir)
    with sessions.begin() as s:
        straight = job_service.enqueue_job(s, kind=JobKind.train_reward, params=PARAMS).id
    run_worker(sessions, worker_settings)

    with sessions.begin() as s:
        stopped = job_service.enqueue_job(s, kind=JobKind.train_reward, params=PARAMS).id
    real = reward_job.Reporter.on_metrics

    def stop_after_two_steps(self, total):  # type: ignore[no-untyped-def]
        report = real(self, total)

        def wrapped(step, metrics):  # type: ignore[no-untyped-def]
            report(step, metrics)
            if step == 2:
                self.ctx.stop.set()  # what SIGTERM does to the worker

        return wrapped

    monkeypatch.setattr(reward_job.Reporter, "on_metrics", stop_after_two_steps)
    run_worker(sessions, worker_settings)
    with sessions.begin() as s:
        job = s.get(Job, stopped)
        assert job.status == JobStatus.queued and job.attempts == 0  # handed back at its checkpoint, not counted
        # the world moves on before the next attempt: a new ranking, a paused labeler
        task = make_task(s, k=4)
        add_ranking(s, task=task, user=Factory(s).labeler(), order=[[0], [1], [2], [3]])
        for user in s.query(User).filter(User.role == "labeler").limit(1):
            user.status = UserStatus.paused
    monkeypatch.setattr(reward_job.Reporter, "on_metrics", real)
    run_worker(sessions, worker_settings)

    first, resumed = trained_weights(sessions, straight), trained_weights(sessions, stopped)
    assert first.keys() == resumed.keys()
    for name in first:
        torch.testing.assert_close(resumed[name], first[name], rtol=0, atol=1e-6)
    with sessions() as s:
        assert s.get(Job, stopped).attempts == 1
        assert "resuming" in s.get(Job, stopped).log_tail
