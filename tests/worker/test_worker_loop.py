"""The worker loop with test handlers on a database that really commits."""

from __future__ import annotations

import contextlib
import os
import threading
import time

from sqlalchemy.orm import Session, sessionmaker

from app.models import Job, JobKind, JobStatus
from app.schemas.jobs import ExportParams
from app.services import jobs as job_service
from trainer.common.context import JobContext
from trainer.worker import WorkerConfig, work


def _queue(sessions: sessionmaker[Session], kind: JobKind = JobKind.export, **params) -> int:
    with sessions.begin() as session:
        return job_service.enqueue_job(session, kind=kind, params=params).id


def _job(sessions: sessionmaker[Session], job_id: int) -> Job:
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def _cfg(settings, **overrides) -> WorkerConfig:
    return WorkerConfig.from_settings(settings, once=True, **overrides)


def test_once_runs_every_queued_job_and_records_it(sessions, worker_settings):
    def handler(ctx: JobContext, params: ExportParams) -> None:
        for step in range(3):
            ctx.check_cancelled()
            ctx.progress((step + 1) / 3)
            ctx.metrics(step=step, loss=1.0 / (step + 1))
        ctx.log(f"exported {params.format}")

    ids = [_queue(sessions), _queue(sessions, format="rankings")]
    assert work(_cfg(worker_settings), sessions, worker_settings, handlers={JobKind.export: handler}) == 2
    for job_id, fmt in zip(ids, ("pairs", "rankings"), strict=True):
        job = _job(sessions, job_id)
        assert job.status == JobStatus.succeeded and job.progress == 1.0 and job.finished_at is not None
        assert [p["step"] for p in job.metrics] == [0, 1, 2] and job.metrics[-1]["loss"] == 1 / 3
        assert f"exported {fmt}" in job.log_tail and job.attempts == 1 and job.error is None


def test_failing_handler_fails_the_job_with_its_error(sessions, worker_settings):
    def handler(ctx: JobContext, params: ExportParams) -> None:
        raise RuntimeError("disk full")

    job_id = _queue(sessions)
    work(_cfg(worker_settings), sessions, worker_settings, handlers={JobKind.export: handler})
    job = _job(sessions, job_id)
    assert job.status == JobStatus.failed and job.error == "RuntimeError: disk full"
    assert "disk full" in job.log_tail


def test_worker_only_takes_its_kinds(sessions, worker_settings):
    sample_id = _queue(sessions, JobKind.sample, n_unlabeled=3)
    export_id = _queue(sessions)
    ran = work(_cfg(worker_settings), sessions, worker_settings, handlers={JobKind.export: lambda ctx, params: None})
    assert ran == 1
    assert _job(sessions, export_id).status == JobStatus.succeeded
    assert _job(sessions, sample_id).status == JobStatus.queued


def test_cancelled_job_stops_at_its_next_checkpoint(sessions, worker_settings):
    steps_run: list[int] = []
    started = threading.Event()

    def handler(ctx: JobContext, params: ExportParams) -> None:
        for step in range(200):
            ctx.check_cancelled()
            steps_run.append(step)
            started.set()
            time.sleep(0.02)

    job_id = _queue(sessions)
    thread = threading.Thread(
        target=work,
        args=(_cfg(worker_settings), sessions, worker_settings),
        kwargs={"handlers": {JobKind.export: handler}},
    )
    thread.start()
    assert started.wait(10)
    with sessions.begin() as session:
        job_service.request_cancel(session, job_id=job_id)
    thread.join(timeout=30)
    job = _job(sessions, job_id)
    assert job.status == JobStatus.cancelled and job.finished_at is not None
    assert 0 < len(steps_run) < 200, "the handler did not stop early"


def test_stale_job_is_resumed_from_checkpoint_by_another_worker(sessions, worker_settings):
    """A worker that stops heartbeating loses the job; the next worker resumes from the checkpoint."""
    seen: list[tuple[int, str | None]] = []

    def first_attempt(ctx: JobContext, params: ExportParams) -> None:
        with ctx.transaction() as session:
            ctx.save_checkpoint(session, "3", progress=0.3)
        raise SystemExit  # stands in for a crash: no finish, no more heartbeats

    def resumed(ctx: JobContext, params: ExportParams) -> None:
        seen.append((ctx.attempt, ctx.checkpoint))

    job_id = _queue(sessions)
    with contextlib.suppress(SystemExit):
        work(_cfg(worker_settings), sessions, worker_settings, handlers={JobKind.export: first_attempt})
    assert _job(sessions, job_id).status == JobStatus.running
    time.sleep(worker_settings.worker_stale_after_s + 0.5)
    work(_cfg(worker_settings), sessions, worker_settings, handlers={JobKind.export: resumed})
    job = _job(sessions, job_id)
    assert seen == [(2, "3")]
    assert job.status == JobStatus.succeeded and job.attempts == 2 and "stopped heartbeating" in job.log_tail


def test_stopping_worker_hands_its_job_back_at_the_checkpoint(sessions, worker_settings):
    stop = threading.Event()

    def handler(ctx: JobContext, params: ExportParams) -> None:
        step = int(ctx.checkpoint or 0)
        while step < 10:
            ctx.check_cancelled()
            with ctx.transaction() as session:
                ctx.save_checkpoint(session, str(step + 1))
            step += 1
            if step == 4:
                stop.set()  # SIGTERM arrives mid-job

    job_id = _queue(sessions)
    cfg = WorkerConfig.from_settings(worker_settings)
    assert work(cfg, sessions, worker_settings, handlers={JobKind.export: handler}, stop=stop) == 1
    job = _job(sessions, job_id)
    assert job.status == JobStatus.queued and job.checkpoint == "4" and job.attempts == 0
    assert "shutting down" in job.log_tail
    work(_cfg(worker_settings), sessions, worker_settings, handlers={JobKind.export: handler})
    job = _job(sessions, job_id)
    assert job.status == JobStatus.succeeded and job.checkpoint == "10" and job.attempts == 1


def _worker_row(sessions: sessionmaker[Session], worker_id: str):  # type: ignore[no-untyped-def]
    from app.models import Worker

    with sessions() as session:
        return session.get(Worker, worker_id)


def _wait_for(predicate, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_an_idle_worker_shows_in_the_workers_table_runs_a_job_and_stops_on_exit(sessions, worker_settings, monkeypatch):
    from app.enums import WorkerState, WorkerStatus
    from app.services import workers as worker_service

    idle_refreshes: list[float] = []
    real_see = worker_service.see_worker

    def counting_see(session, *, worker_id, job_id, now=None):  # type: ignore[no-untyped-def]
        if job_id is None:
            idle_refreshes.append(time.monotonic())
        return real_see(session, worker_id=worker_id, job_id=job_id, now=now)

    monkeypatch.setattr(worker_service, "see_worker", counting_see)
    release = threading.Event()

    def handler(ctx: JobContext, params: ExportParams) -> None:
        release.wait(10)

    cfg = WorkerConfig.from_settings(worker_settings, once=False, device="cpu", kinds=(JobKind.export,))
    stop = threading.Event()
    thread = threading.Thread(
        target=work, args=(cfg, sessions, worker_settings), kwargs={"handlers": {JobKind.export: handler}, "stop": stop}
    )
    thread.start()
    try:
        _wait_for(lambda: _worker_row(sessions, cfg.worker_id) is not None)
        row = _worker_row(sessions, cfg.worker_id)
        assert row.state == WorkerState.idle and row.kinds == ["export"] and row.device == "cpu"
        assert row.capabilities["cpus"] >= 1 and row.current_job_id is None
        first_seen = row.last_seen_at
        # idle: polled every 0.05 s, but the row is written about every heartbeat (0.2 s), not at every poll
        time.sleep(1.0)
        assert 2 <= len(idle_refreshes) <= 7, idle_refreshes
        assert _worker_row(sessions, cfg.worker_id).last_seen_at > first_seen
        with sessions() as session:
            [view] = [v for v in worker_service.list_workers(session, stale_after_s=2.0) if v.id == cfg.worker_id]
            assert view.status == WorkerStatus.idle

        job_id = _queue(sessions)
        _wait_for(lambda: _worker_row(sessions, cfg.worker_id).current_job_id == job_id)
        assert _worker_row(sessions, cfg.worker_id).state == WorkerState.running
        release.set()
        _wait_for(lambda: _worker_row(sessions, cfg.worker_id).state == WorkerState.idle)
        assert _job(sessions, job_id).status == JobStatus.succeeded
    finally:
        release.set()
        stop.set()
        thread.join(timeout=30)
    row = _worker_row(sessions, cfg.worker_id)
    assert row.state == WorkerState.stopped and row.current_job_id is None


def test_a_once_worker_registers_and_stops(sessions, worker_settings):
    from app.enums import WorkerState

    cfg = _cfg(worker_settings)
    assert work(cfg, sessions, worker_settings, handlers={JobKind.export: lambda ctx, params: None}) == 0
    row = _worker_row(sessions, cfg.worker_id)
    assert row is not None and row.state == WorkerState.stopped and row.pid > 0 and row.host


def test_a_starting_worker_removes_folders_a_killed_worker_half_wrote(sessions, worker_settings, caplog):
    models = worker_settings.data_dir / "models"
    abandoned, fresh = models / ".reward-job1-a1.x1.partial", models / ".reward-job2-a1.x2.partial"
    for folder in (abandoned, fresh):
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"half")
    old = time.time() - 3 * 24 * 3600
    for path in (abandoned / "model.safetensors", abandoned):
        os.utime(path, (old, old))
    with caplog.at_level("WARNING", logger="ranklab.worker"):
        work(_cfg(worker_settings), sessions, worker_settings, handlers={JobKind.export: lambda ctx, params: None})
    assert not abandoned.exists() and fresh.exists()
    assert "half-written folder" in caplog.text
