"""The jobs pages in Chromium: queue-form errors, live progress, metrics chart, log tail and cancel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.models import JobKind, JobStatus, Ranking, Role, TaskKind
from app.services import jobs as job_service
from app.services import users as user_service
from tests.agreement.helpers import add_ranking, make_task, singletons
from tests.browser.a11y import assert_accessible
from tests.browser.conftest import login
from trainer.worker import WorkerConfig, work

pytestmark = pytest.mark.browser
PASSWORD = "browser-jobs-pass"


def test_job_page_follows_a_running_job_and_cancels_it(page, live_server):
    with live_server.session() as session:
        user_service.create_user(session, username="jobs-researcher", password=PASSWORD, role=Role.researcher)
        job_id = job_service.enqueue_job(session, kind=JobKind.export, params={}).id
    login(page, "jobs-researcher", PASSWORD)

    page.goto("/jobs")
    page.fill("#param-sample-k", "12")  # the sample form, from its JSON Schema: k is at most 9
    page.click("#queue-job button[type=submit]")
    assert page.evaluate("document.getElementById('param-sample-k').validity.rangeOverflow")
    page.click("#queue-job details.raw-json summary")  # the raw JSON goes to the server as it is
    page.fill("textarea[name=params]", '{"n_unlabeled": 5, "k": 12}')
    page.click("#queue-job button[type=submit]")
    page.wait_for_selector("#queue-error:has-text('params.k')")

    page.goto(f"/jobs/{job_id}")
    page.wait_for_selector("#job[data-status=queued]")
    assert_accessible(page)  # the job page (with its queue panel) in the accessibility sweep's stead
    with live_server.session() as session:  # a worker takes the job and reports
        job_service.claim_job(session, worker_id="browser-worker", device="cpu", kinds=[JobKind.export])
        job_service.heartbeat(session, job_id=job_id, worker_id="browser-worker", attempt=1, progress=0.5)
        job = job_service.get_job(session, job_id=job_id)
        for step in range(3):
            job_service.append_metrics(job, point={"step": step, "loss": 1.0 / (step + 1)})
        job_service.append_log(job, message="step 3 of 6 done")
    page.wait_for_selector("#job[data-status=running]")
    assert page.locator("#job progress").get_attribute("value") == "50"
    page.wait_for_function("document.body.dataset.chartPoints === '3'")
    assert "step 3 of 6 done" in page.inner_text("pre.log")

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel-job")
    page.wait_for_selector("#cancel-job:has-text('Cancelling')")
    with live_server.session() as session:
        assert job_service.get_job(session, job_id=job_id).cancel_requested
        job_service.finish_job(
            session, job_id=job_id, worker_id="browser-worker", attempt=1, status=JobStatus.cancelled
        )
    page.wait_for_selector("#job[data-status=cancelled]")
    assert page.locator("#cancel-job").is_disabled()


def test_export_job_queued_in_the_page_is_downloaded_when_done(page, live_server):
    with live_server.session() as session:
        researcher = user_service.create_user(
            session, username="export-researcher", password=PASSWORD, role=Role.researcher
        )
        task = make_task(session, kind=TaskKind.gold, k=4)
        add_ranking(session, task=task, user=researcher, order=singletons([2, 0, 3, 1]))
        task_id = task.id
    login(page, "export-researcher", PASSWORD)

    page.goto("/jobs")
    page.select_option("#queue-job select[name=kind]", "export")
    assert page.is_visible("#param-export-format") and page.is_hidden("#param-sample-k")  # the kind's own form
    assert page.input_value("#param-export-format") == "pairs"
    # the form starts from the kind's example (active labelers with agreement >= 0.75); export everything instead
    assert page.is_checked("#param-export-active_only") and page.input_value("#param-export-min_agreement") == "0.75"
    page.uncheck("#param-export-active_only")
    page.fill("#param-export-min_agreement", "")
    page.click("#queue-job button[type=submit]")
    page.wait_for_selector("#job[data-status=queued]")
    assert page.locator("#job-file").is_hidden()
    job_id = int(page.url.rstrip("/").rsplit("/", 1)[1])

    cfg = WorkerConfig.from_settings(live_server.settings, once=True, device="cpu", kinds=(JobKind.export,))
    assert work(cfg, live_server.sessions, live_server.settings) == 1
    page.wait_for_selector("#job[data-status=succeeded]")
    # an export reports one result point: shown as a table, not as a one-point chart
    page.wait_for_selector("#metrics-summary:not([hidden])")
    assert page.locator("#metrics-chart").is_hidden()
    summary = dict(
        zip(
            page.locator("#metrics-summary th").all_inner_texts(),
            page.locator("#metrics-summary td").all_inner_texts(),
            strict=True,
        )
    )
    with live_server.session() as session:  # the live server is shared: count what the export read
        read = session.scalar(select(func.count()).select_from(Ranking).where(Ranking.not_rankable.is_(False)))
    assert int(summary["rankings"]) == read and int(summary["lines"]) >= 6
    with page.expect_download() as got:
        page.click("#job-file a")
    download = got.value
    assert download.suggested_filename == f"ranklab-job-{job_id}-pairs.jsonl"
    lines = [json.loads(line) for line in Path(download.path()).read_text(encoding="utf-8").splitlines()]
    mine = [line for line in lines if line["task_id"] == task_id]  # the live server is shared with other tests
    assert len(mine) == 6  # C(4, 2) strict pairs of one researcher ranking


def test_jobs_page_lists_an_idle_worker_until_it_stops(page, live_server):
    """The worker loop's own registration (trainer.presence), without the loop: it would claim other tests' jobs."""
    from app.models import Worker
    from trainer.presence import Presence

    with live_server.session() as session:
        user_service.create_user(session, username="workers-researcher", password=PASSWORD, role=Role.researcher)
    presence = Presence(
        worker_id="browser-idle-worker",
        device="cpu",
        kinds=(JobKind.sample, JobKind.export),
        sessions=live_server.sessions,
        refresh_s=live_server.settings.worker_heartbeat_s,
        forget_after_s=live_server.settings.worker_forget_after_s,
    )
    presence.idle()
    login(page, "workers-researcher", PASSWORD)
    try:
        page.goto("/jobs")
        row = page.locator('#workers-table tr[data-worker-id="browser-idle-worker"]')
        assert row.get_attribute("data-status") == "idle"
        text = row.inner_text()
        assert "idle" in text and "s ago" in text and "sample, export" in text and "cpu" in text and "CPUs" in text
        assert_accessible(page)  # the page with its Workers table filled
        page.add_init_script("window.RANKLAB_WORKERS_REFRESH_MS = 300")
        page.reload()
        presence.stopped()  # the open page follows without a reload
        page.wait_for_function("!document.querySelector('#workers tr[data-worker-id=\"browser-idle-worker\"]')")
        assert "Stopped recently" in page.locator("#workers").inner_text()
    finally:
        with live_server.session() as session:  # the live server is shared: leave no worker behind
            worker = session.get(Worker, "browser-idle-worker")
            if worker is not None:
                session.delete(worker)
