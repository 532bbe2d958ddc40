"""Many claimers on one PostgreSQL queue: every job is claimed exactly once."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine
from app.models import Job, JobKind, JobStatus
from app.services import jobs as job_service

JOBS, CLAIMERS = 60, 8


@pytest.mark.postgres
def test_claim_is_exclusive_under_concurrency_on_postgres(pg_url):
    engine = make_engine(pg_url, pool_size=CLAIMERS + 2)
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    with sessions.begin() as session:
        for _ in range(JOBS):
            job_service.enqueue_job(session, kind=JobKind.export, params={})
    claims: list[tuple[str, int]] = []
    lock, start = threading.Lock(), threading.Barrier(CLAIMERS)

    def claimer(name: str) -> None:
        start.wait()
        while True:
            with sessions.begin() as session:
                job = job_service.claim_job(session, worker_id=name, device="cpu")
            if job is None:
                return
            with lock:
                claims.append((name, job.id))

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(CLAIMERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    counts = Counter(job_id for _, job_id in claims)
    assert len(counts) == JOBS and set(counts.values()) == {1}, "a job was claimed twice or not at all"
    assert len({name for name, _ in claims}) > 1, "only one claimer ever won: no real concurrency"
    with Session(engine) as session:
        rows = session.execute(select(Job.id, Job.worker_id, Job.status, Job.attempts)).all()
    owner = {job_id: name for name, job_id in claims}
    assert all(r.status == JobStatus.running and r.attempts == 1 and r.worker_id == owner[r.id] for r in rows)
    engine.dispose()
