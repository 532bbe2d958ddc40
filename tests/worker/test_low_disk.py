"""Issue 22, item 6: a worker does not start a job while the data folder's disk is under RANKLAB_MIN_FREE_DISK_GB;
the job stays queued and its log says why, with the numbers."""

from __future__ import annotations

import re

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.models import Job, JobKind, JobStatus
from app.services import jobs as job_service
from tests.worker.conftest import fast_settings
from trainer.worker import WorkerConfig, work

NUMBERS = re.compile(
    r"did not start it: only [\d.]+ GB free of [\d.]+ GB on the disk of .+, under the 1e\+06 GB minimum "
    r"\(RANKLAB_MIN_FREE_DISK_GB\)"
)


def _work_once(sessions: sessionmaker[Session], settings: Settings) -> int:
    return work(WorkerConfig.from_settings(settings, once=True, device="cpu"), sessions, settings)


def test_a_worker_refuses_to_start_a_job_without_disk_room(
    sessions: sessionmaker[Session], worker_settings: Settings
) -> None:
    full = fast_settings(worker_settings.database_url, worker_settings.data_dir, min_free_disk_gb=1e6)
    with sessions.begin() as session:
        job_id = job_service.enqueue_job(session, kind=JobKind.export, params={}).id
    for _ in range(2):
        assert _work_once(sessions, full) == 0
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert job.status == JobStatus.queued and job.attempts == 0 and job.worker_id is None
        assert job.started_at is None
        assert len(NUMBERS.findall(job.log_tail)) == 1, job.log_tail  # a repeated refusal replaces its line
    assert _work_once(sessions, worker_settings) == 1  # room again (the default minimum): it runs
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == JobStatus.succeeded, job.log_tail
        assert job.attempts == 1
