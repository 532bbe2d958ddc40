"""The export job: the worker writes the comparison export to a file that researchers download over HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from datasets import load_dataset
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.deps import sessionmaker_dep, settings_dep
from app.errors import InvalidInput
from app.main import create_app
from app.models import Job, JobKind, JobStatus, Role, TaskKind, UserStatus
from app.services import export_options
from app.services import jobs as job_service
from app.services.users import create_user
from tests.agreement.helpers import add_ranking, make_task, singletons
from tests.factories import PASSWORD, token_headers
from tests.worker.conftest import run_job_once


@pytest.fixture
def seeded(sessions: sessionmaker[Session]) -> dict[str, Any]:
    """One gold task of K=5: a researcher's strict order and a labeler's 3 buckets with a flagged output."""
    with sessions.begin() as db:
        researcher = create_user(db, username="res1", password=PASSWORD, role=Role.researcher)
        labeler = create_user(db, username="lab1", password=PASSWORD, role=Role.labeler)
        task = make_task(db, kind=TaskKind.gold, k=5)
        add_ranking(db, task=task, user=researcher, order=singletons([0, 1, 2, 3, 4]))
        add_ranking(db, task=task, user=labeler, order=[[0, 1], [2], [3, 4]], flags={4: ["hallucination"]})
        return {"task_id": task.id, "researcher": researcher}


def _run(sessions, settings, params) -> Job:
    return run_job_once(sessions, settings, JobKind.export, params)


def test_export_job_writes_the_pairs_file_that_datasets_reads(sessions, worker_settings, seeded):
    job = _run(sessions, worker_settings, {"format": "pairs"})
    assert job.status == JobStatus.succeeded, job.log_tail
    assert job.progress == 1.0
    path = export_options.job_file(worker_settings.data_dir, job_id=job.id, fmt="pairs")
    # researcher: C(5,2) = 10 strict pairs; labeler's buckets 2/1/2: 2*1 + 2*2 + 1*2 = 8
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 18
    assert {line["task_id"] for line in lines} == {seeded["task_id"]}
    assert job.metrics[-1]["lines"] == 18 and job.metrics[-1]["rankings"] == 2
    assert "wrote 18 pairs lines from 2 rankings" in job.log_tail
    ds = load_dataset("json", data_files=str(path), split="train")
    assert ds.num_rows == 18 and set(ds.column_names) >= {"prompt", "chosen", "rejected"}
    assert not list(path.parent.glob("*.part"))


def test_export_job_applies_the_filters(sessions, worker_settings, seeded):
    job = _run(sessions, worker_settings, {"format": "rankings", "exclude_flags": ["hallucination"]})
    assert job.status == JobStatus.succeeded, job.log_tail
    path = export_options.job_file(worker_settings.data_dir, job_id=job.id, fmt="rankings")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    # the labeler flagged output 4, so their last bucket keeps only output 3
    assert [r["buckets"] for r in rows] == [[[0], [1], [2], [3], [4]], [[0, 1], [2], [3]]]


def test_export_params_are_checked_when_queued(db):
    with pytest.raises(InvalidInput, match=r"params.exclude_flags.*unknown flags \['rude'\]"):
        job_service.enqueue_job(db, kind=JobKind.export, params={"exclude_flags": ["rude"]})
    with pytest.raises(InvalidInput, match="params.format"):
        job_service.enqueue_job(db, kind=JobKind.export, params={"format": "csv"})
    with pytest.raises(InvalidInput, match="params.min_agreement"):
        job_service.enqueue_job(db, kind=JobKind.export, params={"min_agreement": 1.5})


def test_every_kind_is_runnable_and_unknown_kinds_are_refused(client, factory):
    from app.schemas.jobs import JOB_KINDS
    from trainer.jobs import discover_handlers

    assert set(JOB_KINDS) == set(JobKind) == set(discover_handlers())
    headers = token_headers(client, factory.researcher())
    resp = client.post("/api/v1/jobs", json={"kind": "train_gpt5", "params": {}}, headers=headers)
    assert resp.status_code == 422 and "kind" in resp.json()["detail"]
    sched = client.post(
        "/api/v1/schedules", json={"name": "s-bogus", "kind": "bogus", "cron": "0 * * * *"}, headers=headers
    )
    assert sched.status_code == 422 and "kind" in sched.json()["detail"]
    assert client.get("/api/v1/jobs", headers=headers).json() == []


def test_download_over_http(sessions, worker_settings, seeded):
    job = _run(sessions, worker_settings, {"format": "pairs"})
    with sessions.begin() as db:
        queued = job_service.enqueue_job(db, kind=JobKind.export, params={}).id
        sample = job_service.enqueue_job(db, kind=JobKind.sample, params={"n_unlabeled": 1}).id
        labeler = create_user(db, username="lab2", password=PASSWORD, role=Role.labeler, status=UserStatus.active)
    app = create_app(worker_settings)

    app.dependency_overrides[sessionmaker_dep] = lambda: sessions
    app.dependency_overrides[settings_dep] = lambda: worker_settings
    with TestClient(app) as client:
        headers = token_headers(client, seeded["researcher"])
        got = client.get(f"/api/v1/jobs/{job.id}/file", headers=headers)
        assert got.status_code == 200, got.text
        assert got.headers["content-type"].startswith("application/x-ndjson")
        assert f'filename="ranklab-job-{job.id}-pairs.jsonl"' in got.headers["content-disposition"]
        assert len(got.text.splitlines()) == 18
        early = client.get(f"/api/v1/jobs/{queued}/file", headers=headers)
        assert early.status_code == 409 and "once it has succeeded" in early.json()["detail"]
        wrong = client.get(f"/api/v1/jobs/{sample}/file", headers=headers)
        assert wrong.status_code == 404 and "only export jobs" in wrong.json()["detail"]
        page = client.get(f"/jobs/{job.id}", headers=headers)
        assert f"/api/v1/jobs/{job.id}/file" in page.text
        assert client.get(f"/api/v1/jobs/{job.id}/file", headers=token_headers(client, labeler)).status_code == 403
        export_options.job_file(worker_settings.data_dir, job_id=job.id, fmt="pairs").unlink()
        gone = client.get(f"/api/v1/jobs/{job.id}/file", headers=headers)
        assert gone.status_code == 404 and "no longer in the data folder" in gone.json()["detail"]
