"""A worker killed with SIGKILL mid-job: the job goes back to the queue and another worker resumes it; a model it
was writing is never registered half-written, and the resumed attempt registers exactly one complete version."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from app.models import Job, JobKind, JobStatus, ModelVersion
from app.services import jobs as job_service
from tests.worker.slow_worker import HANDLERS, MODEL_HANDLERS, STEPS
from trainer.worker import WorkerConfig, work


def _checkpoint(sessions, job_id: int) -> int:
    with sessions() as session:
        return int(session.get(Job, job_id).checkpoint or 0)


def _kill_mid_job(sessions, worker_settings, committed_url, tmp_path, **extra_env: str) -> tuple[int, int]:
    """(job id, checkpoint when killed): a worker subprocess is SIGKILLed at step 5 or later of STEPS."""
    with sessions.begin() as session:
        job_id = job_service.enqueue_job(session, kind=JobKind.export, params={}).id
    env = {
        **extra_env,
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
    return job_id, killed_at


def _resume(sessions, worker_settings, handlers) -> None:  # type: ignore[no-untyped-def]
    time.sleep(worker_settings.worker_stale_after_s + 0.5)
    cfg = WorkerConfig.from_settings(worker_settings, once=True, run_scheduler=False)
    assert work(cfg, sessions, worker_settings, handlers=handlers) == 1


def test_sigkilled_worker_job_is_resumed_from_its_checkpoint(sessions, worker_settings, committed_url, tmp_path):
    job_id, killed_at = _kill_mid_job(sessions, worker_settings, committed_url, tmp_path)
    _resume(sessions, worker_settings, HANDLERS)
    with sessions() as session:
        job = session.get(Job, job_id)
    assert job.status == JobStatus.succeeded and job.attempts == 2 and job.checkpoint == str(STEPS)
    by_attempt = {1: [], 2: []}
    for point in job.metrics:
        by_attempt[point["attempt"]].append(point["step"])
    assert by_attempt[1] == list(range(killed_at)), "first attempt's committed steps"
    assert by_attempt[2] == list(range(killed_at, STEPS)), "resumed at the checkpoint, no step twice or skipped"
    assert "stopped heartbeating" in job.log_tail and "from its checkpoint" in job.log_tail


def test_a_model_half_written_when_the_worker_died_is_never_registered(
    sessions, worker_settings, committed_url, tmp_path
):
    job_id, killed_at = _kill_mid_job(sessions, worker_settings, committed_url, tmp_path, SLOW_WORKER_WRITES_MODEL="1")
    models = tmp_path / "data" / "models"
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(ModelVersion)) == 0
    # only the dead attempt's hidden temporary folder: nothing under a model's name
    assert [p.name for p in models.iterdir() if not p.name.startswith(".")] == []
    partial = [p for p in models.iterdir() if p.name.endswith(".partial")]
    assert len(partial) == 1 and len(list(partial[0].glob("shard-*"))) in (killed_at, killed_at + 1)
    _resume(sessions, worker_settings, MODEL_HANDLERS)
    with sessions() as session:
        job = session.get(Job, job_id)
        versions = session.scalars(select(ModelVersion)).all()
    assert job.status == JobStatus.succeeded and job.attempts == 2, job.error
    assert [v.id for v in versions] == [job.output_model_id]
    folder = Path(versions[0].path)
    assert folder.name == f"slow-job{job_id}-a2" and sorted(p.name for p in folder.glob("shard-*")) == sorted(
        f"shard-{n}" for n in range(STEPS)
    )
    assert (folder / "model.safetensors").read_bytes() == b"".join(n.to_bytes(2, "big") for n in range(STEPS))
