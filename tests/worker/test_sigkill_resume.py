"""A worker killed with SIGKILL mid-job: the job goes back to the queue and another worker resumes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from app.models import Job, JobKind, JobStatus
from app.services import jobs as job_service
from tests.worker.slow_worker import HANDLERS, STEPS
from trainer.worker import WorkerConfig, work


def _checkpoint(sessions, job_id: int) -> int:
    with sessions() as session:
        return int(session.get(Job, job_id).checkpoint or 0)


def test_sigkilled_worker_job_is_resumed_from_its_checkpoint(sessions, worker_settings, committed_url, tmp_path):
    with sessions.begin() as session:
        job_id = job_service.enqueue_job(session, kind=JobKind.export, params={}).id
    env = {
        **os.environ,
        "RANKLAB_DATABASE_URL": committed_url,
        "RANKLAB_DATA_DIR": str(tmp_path / "data"),
        "RANKLAB_WORKER_HEARTBEAT_S": "0.2",
        "RANKLAB_WORKER_STALE_AFTER_S": str(worker_settings.worker_stale_after_s),
    }
    proc = subprocess.Popen([sys.executable, "-m", "tests.worker.slow_worker"], env=env)
    try:
        deadline = time.monotonic() + 60
        while _checkpoint(sessions, job_id) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = _checkpoint(sessions, job_id)
    assert 5 <= killed_at < STEPS, "the first worker should have died mid-job"
    with sessions() as session:
        assert session.get(Job, job_id).status == JobStatus.running  # nobody finished it
    time.sleep(worker_settings.worker_stale_after_s + 0.5)
    cfg = WorkerConfig.from_settings(worker_settings, once=True, run_scheduler=False)
    assert work(cfg, sessions, worker_settings, handlers=HANDLERS) == 1
    with sessions() as session:
        job = session.get(Job, job_id)
    assert job.status == JobStatus.succeeded and job.attempts == 2 and job.checkpoint == str(STEPS)
    by_attempt = {1: [], 2: []}
    for point in job.metrics:
        by_attempt[point["attempt"]].append(point["step"])
    assert by_attempt[1] == list(range(killed_at)), "first attempt's committed steps"
    assert by_attempt[2] == list(range(killed_at, STEPS)), "resumed at the checkpoint, no step twice or skipped"
    assert "stopped heartbeating" in job.log_tail and "from its checkpoint" in job.log_tail
