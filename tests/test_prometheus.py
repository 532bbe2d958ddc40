"""Issue 22, item 8: `/metrics` in the Prometheus text format, read with prometheus_client's own parser; admins or
the scrape token only. Runs on the suite's database (SQLite or PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy.orm import Session

from app.config import Settings
from app.deps import settings_dep
from app.models import Job, JobKind, JobStatus, TaskKind, utcnow
from app.services import workers as worker_service
from tests.agreement.helpers import add_ranking, make_task, singletons
from tests.factories import Factory, token_headers

TOKEN = "a-scrape-token-for-prometheus"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, from the exposition parsed by prometheus_client."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def scene(db: Session, factory: Factory) -> None:
    for kind, status in [(JobKind.export, JobStatus.queued)] * 2 + [(JobKind.train_reward, JobStatus.running)]:
        db.add(Job(kind=kind, params={}, status=status, created_at=utcnow() - timedelta(minutes=5)))
    db.add(Job(kind=JobKind.sample, params={}, status=JobStatus.succeeded))
    worker_service.register_worker(
        db, worker_id="w1", host="gpu-1", pid=42, device="cpu", kinds=[JobKind.export], capabilities={}
    )
    researcher, labelers = factory.researcher(), [factory.labeler() for _ in range(3)]
    for n, labeler in enumerate(labelers):
        task = make_task(db, kind=TaskKind.gold, k=4)
        add_ranking(db, task=task, user=researcher, order=singletons([0, 1, 2, 3]))
        at = utcnow() - timedelta(hours=3) if n == 2 else None  # the third labeler ranked hours ago only
        add_ranking(db, task=task, user=labeler, order=singletons([1, 0, 2, 3]), at=at)
    db.flush()


def test_metrics_parse_and_say_what_happens(client: TestClient, factory: Factory, scene: None) -> None:
    admin = token_headers(client, factory.admin())
    researcher = token_headers(client, factory.researcher())
    for _ in range(3):
        assert client.get("/api/v1/jobs/2000000000", headers=researcher).status_code == 404
    resp = client.get("/metrics", headers=admin)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    got = _samples(resp.text)
    route = (("method", "GET"), ("route", "/api/v1/jobs/{job_id}"), ("status", "404"))
    assert got[("ranklab_http_requests_total", route)] == 3
    assert got[("ranklab_http_request_duration_seconds_count", route)] == 3
    assert got[("ranklab_http_request_duration_seconds_bucket", tuple(sorted((*route, ("le", "+Inf")))))] == 3
    assert not any(dict(labels).get("route", "").endswith("2000000000") for _, labels in got)  # templates only
    assert got[("ranklab_jobs", (("kind", "export"), ("status", "queued")))] == 2
    assert got[("ranklab_jobs", (("kind", "train_reward"), ("status", "running")))] == 1
    assert got[("ranklab_jobs", (("kind", "sample"), ("status", "queued")))] == 0
    assert got[("ranklab_oldest_queued_job_age_seconds", ())] >= 290
    assert got[("ranklab_workers_alive", ())] == 1
    assert got[("ranklab_workers", (("status", "idle"),))] == 1
    assert got[("ranklab_rankings_total", ())] == 6
    assert got[("ranklab_rankings_last_hour", ())] == 5
    assert got[("ranklab_labelers_active", ())] == 2  # labelers only, within the hour
    assert got[("ranklab_data_free_bytes", ())] > 0


def test_metrics_are_for_admins_or_the_scrape_token(
    app: FastAPI, client: TestClient, factory: Factory, settings: Settings
) -> None:
    assert client.get("/metrics").status_code == 401
    for user in (factory.labeler(), factory.researcher()):
        assert client.get("/metrics", headers=token_headers(client, user)).status_code == 403
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401  # no token set
    with_token = settings.model_copy(update={"metrics_token": SecretStr(TOKEN)})
    app.dependency_overrides[settings_dep] = lambda: with_token
    scraped = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert scraped.status_code == 200 and "ranklab_jobs" in scraped.text
    assert client.get("/metrics", headers={"Authorization": "Bearer not-the-token"}).status_code == 401


def test_healthz_stays_cheap_and_open(client: TestClient) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.json()["status"] == "ok"
