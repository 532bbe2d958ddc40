"""The workers table: its services on the rolled-back test session, the queue explanation that reads it, the API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session

from app.enums import WorkerState, WorkerStatus
from app.models import Job, JobKind, JobStatus, Worker, utcnow
from app.services import jobs as job_service
from app.services import workers as worker_service
from app.services.job_queue import Waiting, queue_state
from tests.factories import browser_login, token_headers

STALE_S = 120.0
ALL_KINDS = tuple(JobKind)


@pytest.fixture
def no_workers(db: Session) -> Session:
    """The test's session with the workers table empty (inside the rolled-back transaction)."""
    db.execute(delete(Worker))
    return db


def _register(db: Session, worker_id: str, kinds=ALL_KINDS, now=None, device: str = "cpu") -> Worker:  # type: ignore[no-untyped-def]
    return worker_service.register_worker(
        db, worker_id=worker_id, host="node-1", pid=4242, device=device, kinds=kinds, capabilities={"cpus": 8}, now=now
    )


def _views(db: Session, now=None) -> dict[str, worker_service.WorkerView]:  # type: ignore[no-untyped-def]
    return {v.id: v for v in worker_service.list_workers(db, stale_after_s=STALE_S, now=now)}


def test_a_worker_goes_from_idle_to_running_to_not_responding_to_stopped(no_workers):
    db, t0 = no_workers, utcnow()
    _register(db, "w-life", now=t0)
    view = _views(db, t0)["w-life"]
    assert view.status == WorkerStatus.idle and view.alive and view.current_job_id is None
    assert (view.host, view.pid, view.capabilities, view.kinds[0]) == ("node-1", 4242, {"cpus": 8}, "sample")

    job = job_service.enqueue_job(db, kind=JobKind.export, params={})
    assert worker_service.see_worker(db, worker_id="w-life", job_id=job.id, now=t0 + timedelta(seconds=5))
    view = _views(db, t0 + timedelta(seconds=6))["w-life"]
    assert view.status == WorkerStatus.running and view.current_job_id == job.id
    assert view.current_job_kind == JobKind.export and view.seen_s_ago == pytest.approx(1.0)

    later = t0 + timedelta(seconds=5 + STALE_S + 1)
    view = _views(db, later)["w-life"]
    assert view.status == WorkerStatus.not_responding and not view.alive and view.current_job_id == job.id

    worker_service.stop_worker(db, worker_id="w-life", now=later)
    view = _views(db, later)["w-life"]
    assert view.status == WorkerStatus.stopped and view.state == WorkerState.stopped and view.current_job_id is None


def test_seeing_a_worker_without_a_row_says_so_and_registering_again_renews_it(no_workers):
    db, t0 = no_workers, utcnow()
    assert not worker_service.see_worker(db, worker_id="w-gone", job_id=None)
    _register(db, "w-again", now=t0 - timedelta(hours=1))
    worker_service.stop_worker(db, worker_id="w-again", now=t0 - timedelta(hours=1))
    _register(db, "w-again", kinds=(JobKind.sample,), now=t0)
    view = _views(db, t0)["w-again"]
    assert view.status == WorkerStatus.idle and view.kinds == ["sample"] and view.last_seen_at == t0


def test_rows_not_seen_for_the_forget_time_are_deleted_and_others_kept(no_workers):
    db, now = no_workers, utcnow()
    _register(db, "w-old-stopped", now=now - timedelta(days=2))
    worker_service.stop_worker(db, worker_id="w-old-stopped", now=now - timedelta(days=2))
    _register(db, "w-old-vanished", now=now - timedelta(hours=25))
    _register(db, "w-recently-stopped", now=now - timedelta(hours=1))
    worker_service.stop_worker(db, worker_id="w-recently-stopped", now=now - timedelta(hours=1))
    _register(db, "w-alive", now=now)
    assert worker_service.forget_workers(db, older_than_s=24 * 3600, now=now) == 2
    assert set(_views(db, now)) == {"w-recently-stopped", "w-alive"}


def test_list_puts_running_first_then_idle_not_responding_stopped(no_workers):
    db, now = no_workers, utcnow()
    job = job_service.enqueue_job(db, kind=JobKind.sample, params={"n_unlabeled": 2})
    for name in ("a-stopped", "b-silent", "c-idle", "d-running"):
        _register(db, name, now=now - timedelta(seconds=STALE_S * 2 if name == "b-silent" else 0))
    worker_service.stop_worker(db, worker_id="a-stopped", now=now)
    worker_service.see_worker(db, worker_id="d-running", job_id=job.id, now=now)
    order = [v.id for v in worker_service.list_workers(db, stale_after_s=STALE_S, now=now)]
    assert order == ["d-running", "c-idle", "b-silent", "a-stopped"]


def _queued(db: Session, kind: JobKind = JobKind.export) -> Job:
    return job_service.enqueue_job(db, kind=kind, params={"n_unlabeled": 2} if kind == JobKind.sample else {})


def test_queue_says_no_worker_is_alive(no_workers):
    db, now = no_workers, utcnow()
    _register(db, "w-dead", now=now - timedelta(seconds=STALE_S + 5))
    _register(db, "w-stopped", now=now)
    worker_service.stop_worker(db, worker_id="w-stopped", now=now)
    state = queue_state(db, job=_queued(db), stale_after_s=STALE_S, now=now)
    assert state.waiting == Waiting.no_worker
    assert [w.id for w in state.not_responding] == ["w-dead"] and not state.idle and not state.busy


def test_queue_says_idle_workers_take_its_kind(no_workers):
    db, now = no_workers, utcnow()
    _register(db, "w-idle-1", now=now)
    _register(db, "w-idle-2", kinds=(JobKind.export,), now=now)
    _register(db, "w-sampler", kinds=(JobKind.sample,), now=now)  # idle, but not for exports
    state = queue_state(db, job=_queued(db), stale_after_s=STALE_S, now=now)
    assert state.waiting == Waiting.idle_worker
    assert [w.id for w in state.idle] == ["w-idle-1", "w-idle-2"] and [w.id for w in state.others] == ["w-sampler"]


def test_queue_says_no_live_worker_takes_its_kind(no_workers):
    db, now = no_workers, utcnow()
    _register(db, "w-sampler", kinds=(JobKind.sample, JobKind.train_reward), now=now)
    state = queue_state(db, job=_queued(db), stale_after_s=STALE_S, now=now)
    assert state.waiting == Waiting.no_worker_for_kind and [w.id for w in state.others] == ["w-sampler"]


def test_queue_says_all_workers_are_busy(no_workers):
    db, now = no_workers, utcnow()
    running = Job(kind=JobKind.export, params={}, status=JobStatus.running, worker_id="w-busy", heartbeat_at=now)
    db.add(running)
    db.flush()
    _register(db, "w-busy", now=now)
    worker_service.see_worker(db, worker_id="w-busy", job_id=running.id, now=now)
    _register(db, "w-sampler", kinds=(JobKind.sample,), now=now)  # idle, but not for exports
    state = queue_state(db, job=_queued(db), stale_after_s=STALE_S, now=now)
    assert state.waiting == Waiting.all_busy and [w.id for w in state.busy] == ["w-busy"]
    assert state.busy[0].current_job_kind == JobKind.export and not state.idle


def test_a_running_job_of_a_worker_without_a_row_counts_as_busy(no_workers):
    """A worker from before the workers table shows only through its job's heartbeat: alive and busy."""
    db, now = no_workers, utcnow()
    db.add(Job(kind=JobKind.sample, params={}, status=JobStatus.running, worker_id="w-old", heartbeat_at=now))
    db.flush()
    state = queue_state(db, job=_queued(db), stale_after_s=STALE_S, now=now)
    assert state.waiting == Waiting.all_busy and [j.worker_id for j in state.running] == ["w-old"]


def test_the_api_lists_workers_for_researchers_only(client, factory, db):
    db.execute(delete(Worker))
    _register(db, "w-api", kinds=(JobKind.export,))
    researcher = token_headers(client, factory.researcher())
    listed = client.get("/api/v1/workers", headers=researcher)
    assert listed.status_code == 200
    [row] = listed.json()
    assert row["id"] == "w-api" and row["status"] == "idle" and row["kinds"] == ["export"]
    assert row["capabilities"] == {"cpus": 8} and row["current_job_id"] is None and row["seen_s_ago"] >= 0
    assert client.get("/api/v1/workers", headers=token_headers(client, factory.admin())).status_code == 200
    assert client.get("/api/v1/workers", headers=token_headers(client, factory.labeler())).status_code == 403
    assert client.get("/api/v1/workers").status_code == 401


def test_jobs_page_lists_live_workers_and_a_queued_job_says_why_it_waits(client, factory, db):
    db.execute(delete(Worker))
    now = utcnow()
    _register(db, "w-page-idle", kinds=(JobKind.sample,), now=now)
    _register(db, "w-page-silent", now=now - timedelta(hours=1))
    _register(db, "w-page-stopped", now=now)
    worker_service.stop_worker(db, worker_id="w-page-stopped")
    job = _queued(db)
    browser_login(client, factory.researcher())
    page = client.get("/jobs").text
    assert 'data-worker-id="w-page-idle" data-status="idle"' in page
    assert 'data-worker-id="w-page-silent" data-status="not_responding"' in page and "60 min ago" in page
    assert "w-page-stopped" not in page and "Stopped recently: 1" in page
    detail = client.get(f"/jobs/{job.id}").text
    assert 'data-waiting="no_worker_for_kind"' in detail
    assert "1 worker is alive, but none takes export jobs" in detail and "w-page-silent" in detail
    _register(db, "w-page-exporter", kinds=(JobKind.export,), now=utcnow())
    detail = client.get(f"/jobs/{job.id}").text
    assert 'data-waiting="idle_worker"' in detail and "1 idle worker takes export jobs: it claims this job" in detail


def test_a_cuda_worker_describes_its_gpus_without_a_gpu_here(monkeypatch):
    import sys
    from types import SimpleNamespace

    from trainer.presence import describe_device

    props = SimpleNamespace(name="NVIDIA H200", total_memory=140 * 2**30)
    cuda = SimpleNamespace(device_count=lambda: 2, get_device_properties=lambda index: props)
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(cuda=cuda))
    assert describe_device("cuda") == {"gpus": 2, "gpu": "NVIDIA H200", "gpu_memory_gib": 140}
    assert describe_device("cpu")["cpus"] >= 1
