"""Concurrent `next` requests over real HTTP: uvicorn (two worker processes) on PostgreSQL, many labelers at once."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import ROOT_DIR
from app.db import make_engine
from app.migrate import upgrade
from app.models import Assignment, RankingTask, Role, UserStatus
from app.services import users as user_service
from app.services.prompts import get_or_create_prompt
from app.services.tasks import NewCompletion, create_task
from tests.pg import fresh_postgres_database

pytestmark = pytest.mark.postgres
N_TASKS, OVERLAP, N_LABELERS = 4, 3, 30
PASSWORD = "http-race-password"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server() -> Iterator[tuple[str, str]]:
    """(base URL, database URL): a migrated, seeded PostgreSQL database served by `uvicorn --workers 2`."""
    with fresh_postgres_database("rl_http_race") as url:
        upgrade(url)
        engine = make_engine(url)
        with Session(engine) as s, s.begin():
            for n in range(N_TASKS):
                prompt, _ = get_or_create_prompt(s, text=f"http race prompt {n}")
                completions = [NewCompletion(text=f"{n}-{i}") for i in range(4)]
                create_task(s, prompt=prompt, completions=completions, overlap=OVERLAP)
            for i in range(N_LABELERS):
                user_service.create_user(
                    s, username=f"http{i}", password=PASSWORD, role=Role.labeler, status=UserStatus.active
                )
        engine.dispose()
        port = _free_port()
        env = {**os.environ, "RANKLAB_DATABASE_URL": url, "RANKLAB_ENV": "test", "RANKLAB_HIDDEN_GOLD_SHARE": "0"}
        cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port), "--workers", "2"]
        proc = subprocess.Popen(cmd, cwd=ROOT_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("uvicorn did not start")
                time.sleep(0.1)
            yield base, url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


async def _race(base: str) -> tuple[list[httpx.Response], list[httpx.Response]]:
    limits = httpx.Limits(max_connections=N_LABELERS + 5)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        gate = asyncio.Semaphore(6)  # argon2 is slow on purpose: log in a few at a time, outside the race

        async def login(i: int) -> dict[str, str]:
            async with gate:
                resp = await client.post("/api/v1/auth/token", data={"username": f"http{i}", "password": PASSWORD})
                resp.raise_for_status()
                return {"Authorization": f"Bearer {resp.json()['access_token']}"}

        headers = await asyncio.gather(*(login(i) for i in range(N_LABELERS)))
        first = await asyncio.gather(*(client.get("/api/v1/labeling/next", headers=h) for h in headers))
        again = await asyncio.gather(*(client.get("/api/v1/labeling/next", headers=h) for h in headers))
    return list(first), list(again)


def test_concurrent_next_requests_never_overfill_a_task(server):
    base, url = server
    # a thread of its own: the session's Playwright browser keeps an event loop running in this one
    with ThreadPoolExecutor(1) as pool:
        first, again = pool.submit(asyncio.run, _race(base)).result()
    assert {r.status_code for r in first} | {r.status_code for r in again} <= {200, 204}
    served = [r.json()["assignment_id"] for r in first if r.status_code == 200]
    # a repeated `next` while holding a live lease returns that same assignment
    assert [r.json()["assignment_id"] for r, f in zip(again, first, strict=True) if f.status_code == 200] == served
    # never more than the overlap asks (a request that finds every free task locked by another one may get a 204,
    # and may then get a task on its second try)
    holding = [i for i, r in enumerate(again) if r.status_code == 200]
    assert 0 < len(holding) <= N_TASKS * OVERLAP
    engine = make_engine(url)
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Assignment)) == len(holding)
    # and the labelers still without a task get the remaining slots when they ask again, one at a time
    tokens = _login_one_by_one(base, [i for i, r in enumerate(again) if r.status_code == 204])
    extra = [httpx.get(f"{base}/api/v1/labeling/next", headers=h, timeout=30).status_code for h in tokens]
    assert extra.count(200) == N_TASKS * OVERLAP - len(holding)
    with Session(engine) as s:
        assignments = s.scalars(select(Assignment)).all()
        per_task = Counter(a.task_id for a in assignments)
        assert len(assignments) == N_TASKS * OVERLAP and set(per_task.values()) == {OVERLAP}
        assert len({(a.task_id, a.labeler_id) for a in assignments}) == len(assignments)
        assert all(t.slots_taken == OVERLAP for t in s.scalars(select(RankingTask)))
    engine.dispose()


def _login_one_by_one(base: str, labelers: list[int]) -> list[dict[str, str]]:
    """Bearer headers for the given labelers, logged in one by one."""
    headers = []
    for i in labelers:
        resp = httpx.post(f"{base}/api/v1/auth/token", data={"username": f"http{i}", "password": PASSWORD}, timeout=30)
        resp.raise_for_status()
        headers.append({"Authorization": f"Bearer {resp.json()['access_token']}"})
    return headers
