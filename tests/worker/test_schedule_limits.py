"""Issue 22, defect 4: a schedule cannot fill the disk.

It may not fire more often than `RANKLAB_SCHEDULE_MIN_INTERVAL_S` (a cron with a seconds field included), never
queues a job while its previous one is queued or running, and export files are kept by count and age.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import InvalidInput
from app.models import Job, JobKind, JobStatus, Schedule
from app.services import export_options
from app.services import schedules as schedule_service
from app.services import storage as storage_service
from tests.factories import Factory, token_headers

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cron", "gap"),
    # croniter's sixth field is the second: "* * * * * */10" fires every 10 s, "*/10 * * * * *" every second of
    # every tenth minute
    [("* * * * * *", "1 s"), ("* * * * * */10", "10 s"), ("*/10 * * * * *", "1 s"), ("0,1 3 * * *", "60 s")],
)
def test_schedules_that_fire_more_often_than_the_minimum_are_refused(db: Session, cron: str, gap: str) -> None:
    with pytest.raises(InvalidInput, match=f"every {gap}.*at most every 300 s"):
        schedule_service.create_schedule(
            db, name="too-often", kind=JobKind.export, params={}, cron=cron, min_interval_s=300, now=T0
        )


def test_the_api_refuses_a_seconds_field_and_names_the_setting(
    client: TestClient, factory: Factory, db: Session, settings: Settings
) -> None:
    headers = token_headers(client, factory.researcher())
    before = db.scalar(select(func.count()).select_from(Schedule))
    body = {"name": "flood", "kind": "export", "cron": "* * * * * *"}
    resp = client.post("/api/v1/schedules", json=body, headers=headers)
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert "every 1 s" in detail and "RANKLAB_SCHEDULE_MIN_INTERVAL_S" in detail
    assert db.scalar(select(func.count()).select_from(Schedule)) == before
    ok = client.post("/api/v1/schedules", json={**body, "cron": "*/5 * * * *"}, headers=headers)
    assert ok.status_code == 201, ok.text
    patched = client.patch(f"/api/v1/schedules/{ok.json()['id']}", json={"cron": "* * * * * */2"}, headers=headers)
    assert patched.status_code == 422 and "every 2 s" in patched.json()["detail"]


def test_a_cron_schedule_never_queues_while_its_previous_job_is_queued_or_running(db: Session) -> None:
    schedule = schedule_service.create_schedule(
        db, name="every-minute", kind=JobKind.export, params={}, cron="* * * * *", now=T0
    )
    first = schedule_service.run_due_schedules(db, now=T0 + timedelta(minutes=1))
    assert len(first) == 1
    for minute, status in ((2, JobStatus.queued), (3, JobStatus.running)):
        first[0].status = status
        db.flush()
        assert schedule_service.run_due_schedules(db, now=T0 + timedelta(minutes=minute, seconds=1)) == []
        assert schedule.next_run_at == T0 + timedelta(minutes=minute + 1)  # that period is skipped, not postponed
    first[0].status = JobStatus.succeeded
    db.flush()
    again = schedule_service.run_due_schedules(db, now=T0 + timedelta(minutes=4))
    assert len(again) == 1 and again[0].id != first[0].id
    jobs = db.scalar(select(func.count()).select_from(Job).where(Job.schedule_id == schedule.id))
    assert jobs == 2


def _export_file(data_dir: Path, job_id: int, age_days: float) -> Path:
    path = export_options.job_file(data_dir, job_id=job_id, fmt="pairs")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"prompt": "x"}\n' * 10)
    stamp = time.time() - age_days * 86400
    os.utime(path, (stamp, stamp))
    return path


def test_export_files_are_kept_by_count_and_age(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    files = {job_id: _export_file(data_dir, job_id, age) for job_id, age in [(1, 40), (2, 5), (3, 3), (4, 2), (5, 1)]}
    partial = files[5].with_name(files[5].name + ".part")
    partial.write_text("being written")
    removed = storage_service.prune_exports(data_dir, keep=3, max_age_days=30)
    assert sorted(p.name for p in removed) == ["job-1-pairs.jsonl", "job-2-pairs.jsonl"]
    assert [p.exists() for p in files.values()] == [False, False, True, True, True]
    assert partial.exists()  # a file being written is never touched
    assert storage_service.prune_exports(data_dir, keep=3, max_age_days=30) == []
    removed = storage_service.prune_exports(data_dir, keep=10, max_age_days=1.5)
    assert sorted(p.name for p in removed) == ["job-3-pairs.jsonl", "job-4-pairs.jsonl"]


def test_an_export_job_applies_the_retention(sessions, worker_settings) -> None:  # type: ignore[no-untyped-def]
    from tests.worker.conftest import fast_settings, run_job_once

    settings = fast_settings(worker_settings.database_url, worker_settings.data_dir, export_keep=2)
    for job_id, age_days in ((1001, 3), (1002, 2), (1003, 1)):
        _export_file(settings.data_dir, job_id, age_days)
    job = run_job_once(sessions, settings, JobKind.export, {})
    assert job.status == JobStatus.succeeded, job.log_tail
    left = sorted(p.name for p in (settings.data_dir / "exports").glob("*.jsonl"))
    assert set(left) == {"job-1003-pairs.jsonl", f"job-{job.id}-pairs.jsonl"}
    assert "removed 2 older export file(s)" in job.log_tail
