"""Jobs, job, schedules and models pages: researchers see them with prepared data; labelers are refused."""

from __future__ import annotations

from app.models import JobKind, ModelKind, ModelVersion
from app.services import jobs as job_service
from app.services import schedules as schedule_service
from tests.factories import browser_login


def test_pages_render_for_researcher(client, factory, db):
    researcher = factory.researcher()
    job = job_service.enqueue_job(db, kind=JobKind.sample, params={"n_unlabeled": 3})
    job_service.append_metrics(job, point={"step": 1, "tokens_per_s": 12.5})
    job_service.append_log(job, message="hello from the worker")
    schedule_service.create_schedule(db, name="nightly", kind=JobKind.export, params={}, cron="0 3 * * *")
    db.add(ModelVersion(kind=ModelKind.sft, name="smol-test", path="/m/smol", metrics={"loss": 2.0}))
    db.flush()
    browser_login(client, researcher)
    home = client.get("/")
    assert 'href="/jobs"' in home.text and 'href="/models"' in home.text  # nav entries appear
    listing = client.get("/jobs")
    assert listing.status_code == 200 and f'data-job-id="{job.id}"' in listing.text
    assert "n_unlabeled" in listing.text and "Completions per prompt" in listing.text  # params documented
    detail = client.get(f"/jobs/{job.id}")
    assert detail.status_code == 200 and "hello from the worker" in detail.text
    assert "tokens_per_s" in detail.text and "vendor/chart.umd.js" in detail.text and "js/jobs.js" in detail.text
    assert "cron 0 3 * * *" in client.get("/schedules").text
    models = client.get("/models")
    assert "smol-test" in models.text and "loss=2.0" in models.text
    assert client.get("/jobs/999999").status_code == 404


def test_pages_refuse_labelers(client, factory):
    browser_login(client, factory.labeler())
    for path in ("/jobs", "/schedules", "/models"):
        assert client.get(path).status_code == 403
