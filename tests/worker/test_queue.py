"""The queue services on the rolled-back test session: params, claim, heartbeat, cancel, stale requeue."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.errors import Conflict, InvalidInput
from app.models import JobKind, JobStatus, utcnow
from app.services import jobs as job_service
from app.services.jobs import Control, JobLost


def _sample(db, **params):
    return job_service.enqueue_job(db, kind=JobKind.sample, params={"n_unlabeled": 5, **params})


def test_enqueue_fills_defaults(db):
    job = _sample(db, k=6)
    assert job.status == JobStatus.queued and job.attempts == 0
    assert job.params["k"] == 6 and job.params["temperature"] == 1.0 and job.params["n_unlabeled"] == 5


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"n_unlabeled": 5, "k": 12}, "params.k"),
        ({"n_unlabeled": 5, "temperature": -1}, "params.temperature"),
        ({"n_unlabeled": 5, "top_p": 0}, "params.top_p"),
        ({"n_unlabeled": 5, "tempreature": 0.7}, "params.tempreature"),
        ({"k": 4}, "exactly one of prompt_ids"),
        ({"prompt_ids": [999999]}, "params.prompt_ids"),
        ({"n_unlabeled": 5, "policy_version": 424242}, "params.policy_version"),
    ],
)
def test_bad_params_are_refused_naming_the_param(db, params, named):
    with pytest.raises(InvalidInput) as err:
        job_service.enqueue_job(db, kind=JobKind.sample, params=params)
    assert named in err.value.message


def test_claim_takes_oldest_of_allowed_kinds_and_counts_attempts(db):
    export = job_service.enqueue_job(db, kind=JobKind.export, params={})
    first, second = _sample(db), _sample(db)
    claimed = job_service.claim_job(db, worker_id="w1", device="cpu", kinds=[JobKind.sample])
    assert claimed is not None and claimed.id == first.id
    assert claimed.status == JobStatus.running and claimed.attempts == 1 and claimed.worker_id == "w1"
    assert claimed.device == "cpu" and claimed.heartbeat_at is not None
    again = job_service.claim_job(db, worker_id="w2", device="cuda", kinds=[JobKind.sample])
    assert again is not None and again.id == second.id
    assert job_service.claim_job(db, worker_id="w3", device="cpu", kinds=[JobKind.sample]) is None
    assert job_service.claim_job(db, worker_id="w3", device="cpu").id == export.id


def test_heartbeat_reports_cancel_and_loss(db):
    job = _sample(db)
    job_service.claim_job(db, worker_id="w1", device="cpu")
    assert job_service.heartbeat(db, job_id=job.id, worker_id="w1", attempt=1, progress=0.5) == Control.carry_on
    db.refresh(job)
    assert job.progress == 0.5
    job_service.request_cancel(db, job_id=job.id)
    assert job_service.heartbeat(db, job_id=job.id, worker_id="w1", attempt=1) == Control.cancel
    assert job_service.heartbeat(db, job_id=job.id, worker_id="other", attempt=1) == Control.lost


def test_cancel_queued_running_and_finished(db):
    queued = _sample(db)
    assert job_service.request_cancel(db, job_id=queued.id).status == JobStatus.cancelled
    running = _sample(db)
    job_service.claim_job(db, worker_id="w", device="cpu")
    job = job_service.request_cancel(db, job_id=running.id)
    assert job.status == JobStatus.running and job.cancel_requested
    assert "cancel requested" in job.log_tail
    with pytest.raises(Conflict):
        job_service.request_cancel(db, job_id=queued.id)


def test_stale_job_is_requeued_then_failed_after_max_attempts(db):
    job = job_service.enqueue_job(db, kind=JobKind.sample, params={"n_unlabeled": 1}, max_attempts=2)
    later = utcnow() + timedelta(seconds=100)
    for attempt in (1, 2):
        claimed = job_service.claim_job(db, worker_id=f"w{attempt}", device="cpu")
        assert claimed.id == job.id and claimed.attempts == attempt
        claimed.checkpoint = f"step {attempt}"
        assert job_service.requeue_stale(db, stale_after_s=10, now=utcnow()) == []  # fresh heartbeat
        job_service.requeue_stale(db, stale_after_s=10, now=later)
        db.refresh(job)
    assert job.status == JobStatus.failed and "out of attempts" in job.error
    assert job.checkpoint == "step 2"


def test_requeued_job_keeps_checkpoint_and_old_owner_is_locked_out(db):
    job = _sample(db)
    job_service.claim_job(db, worker_id="old", device="cpu")
    job.checkpoint = "42"
    job_service.requeue_stale(db, stale_after_s=1, now=utcnow() + timedelta(seconds=5))
    db.refresh(job)
    assert job.status == JobStatus.queued and job.checkpoint == "42" and job.worker_id is None
    job_service.claim_job(db, worker_id="new", device="cpu")
    with pytest.raises(JobLost):
        job_service.finish_job(db, job_id=job.id, worker_id="old", attempt=1, status=JobStatus.succeeded)
    done = job_service.finish_job(db, job_id=job.id, worker_id="new", attempt=2, status=JobStatus.succeeded)
    assert done.status == JobStatus.succeeded and done.progress == 1.0


def test_metrics_and_log_tail_are_bounded(db):
    job = _sample(db)
    for step in range(job_service.MAX_METRIC_POINTS + 3):
        job_service.append_metrics(job, point={"step": step, "loss": 1.0})
    assert len(job.metrics) == job_service.MAX_METRIC_POINTS and job.metrics[-1]["step"] == step
    job_service.append_log(job, message="x" * (job_service.LOG_TAIL_CHARS * 2))
    assert len(job.log_tail) == job_service.LOG_TAIL_CHARS
