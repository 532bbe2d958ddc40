"""Load test of the labeling loop: N simulated labelers, next + submit over real HTTP, uvicorn on PostgreSQL.

    .venv/bin/python bench/labeling_load.py --labelers 200 --tasks 1000000 --workers 2 --duration 30

Creates a throw-away PostgreSQL database, migrates it, bulk-seeds tasks with INSERT ... SELECT generate_series,
starts `uvicorn app.main:app --workers W`, logs every labeler in once (bearer tokens), then loops next -> submit
for --duration seconds and prints submissions/s and p50/p99 latency of next and submit. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.migrate import upgrade  # noqa: E402
from app.security import hash_password  # noqa: E402

PASSWORD = "bench-password-1"
SEED_SQL = [
    """INSERT INTO prompts (id, text, content_hash, source, split, metadata, created_at)
       SELECT g, 'Benchmark prompt ' || g, md5('p' || g) || md5('q' || g), 'import', 'train', '{}', now()
       FROM generate_series(1, :n) g""",
    """INSERT INTO completions (id, prompt_id, model_name, text, sampling_params, created_at)
       SELECT (g - 1) * :k + i, g, 'bench', 'Answer ' || i || ' to prompt ' || g || repeat(' words', 40), '{}', now()
       FROM generate_series(1, :n) g, generate_series(1, :k) i""",
    """INSERT INTO ranking_tasks (id, prompt_id, kind, status, k, overlap, slots_taken, priority, created_at)
       SELECT g, g, 'production', 'open', :k, :overlap, 0, 0, now() FROM generate_series(1, :n) g""",
    """INSERT INTO task_completions (task_id, position, completion_id)
       SELECT g, i - 1, (g - 1) * :k + i FROM generate_series(1, :n) g, generate_series(1, :k) i""",
    "SELECT setval('prompts_id_seq', :n)",
    "SELECT setval('completions_id_seq', CAST(:n AS bigint) * :k)",
    "SELECT setval('ranking_tasks_id_seq', :n)",
]


def create_database(server: str) -> str:
    name = f"rl_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def drop_database(server: str, url: str) -> None:
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def seed(url: str, *, tasks: int, k: int, overlap: int, labelers: int) -> float:
    """Bulk-insert tasks and labelers; returns seconds taken."""
    start = time.perf_counter()
    engine = create_engine(url)
    pw_hash = hash_password(PASSWORD)
    with engine.begin() as conn:
        for sql in SEED_SQL:
            conn.execute(text(sql), {"n": tasks, "k": k, "overlap": overlap})
        conn.execute(
            text(
                "INSERT INTO users (username, password_hash, role, status, created_at, gold_alert) "
                "SELECT 'bench' || g, :h, 'labeler', 'active', now(), false FROM generate_series(1, :m) g"
            ),
            {"h": pw_hash, "m": labelers},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return time.perf_counter() - start


def start_server(url: str, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RANKLAB_DATABASE_URL": url, "RANKLAB_LOG_LEVEL": "WARNING", "RANKLAB_ENV": "test"}
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "app.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--timeout-keep-alive",
        "120",  # the load client keeps connections open across its whole run
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("uvicorn did not start")


async def login(client: httpx.AsyncClient, name: str) -> dict[str, str]:
    resp = await client.post("/api/v1/auth/token", data={"username": name, "password": PASSWORD})
    resp.raise_for_status()
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


async def labeler(
    client: httpx.AsyncClient, headers: dict[str, str], stop_at: float, stats: dict[str, list[float]]
) -> None:
    """One simulated labeler: next, rank at random with ratings, submit; repeat until the clock runs out."""
    while time.perf_counter() < stop_at:
        try:
            await one_task(client, headers, stats)
        except (httpx.TransportError, httpx.HTTPStatusError):
            stats["errors"].append(-1.0)


async def one_task(client: httpx.AsyncClient, headers: dict[str, str], stats: dict[str, list[float]]) -> None:
    """next, rank at random with ratings, submit."""
    t0 = time.perf_counter()
    got = await client.get("/api/v1/labeling/next", headers=headers)
    stats["next"].append(time.perf_counter() - t0)
    if got.status_code == 204:
        stats["empty"].append(1.0)
        await asyncio.sleep(0.05)
        return
    got.raise_for_status()
    task = got.json()
    ids = [c["id"] for c in task["completions"]]
    random.shuffle(ids)
    body = {
        "ranking": [[i] for i in ids],
        "ratings": {str(i): random.randint(1, 7) for i in ids},
        "idempotency_key": uuid.uuid4().hex,
    }
    url = f"/api/v1/labeling/assignments/{task['assignment_id']}/ranking"
    t0 = time.perf_counter()
    sub = await client.post(url, json=body, headers=headers)
    stats["submit"].append(time.perf_counter() - t0)
    if sub.status_code not in (200, 201):
        stats["errors"].append(float(sub.status_code))


def pct_ms(values: list[float], q: int) -> float:
    """The q-th percentile in milliseconds."""
    if len(values) < 2:
        return values[0] * 1000 if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


async def drive(base: str, n: int, duration: float) -> tuple[dict[str, list[float]], float]:
    """Log everyone in (argon2 is deliberately slow, so outside the clock), then run the loop for `duration`."""
    stats: dict[str, list[float]] = {"next": [], "submit": [], "empty": [], "errors": []}
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        gate = asyncio.Semaphore(8)

        async def gated_login(i: int) -> dict[str, str]:
            async with gate:
                return await login(client, f"bench{i + 1}")

        headers = await asyncio.gather(*(gated_login(i) for i in range(n)))
        start = time.perf_counter()
        await asyncio.gather(*(labeler(client, h, start + duration, stats) for h in headers))
        elapsed = time.perf_counter() - start
    return stats, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labelers", type=int, default=50, help="concurrent simulated labelers")
    parser.add_argument("--tasks", type=int, default=20_000, help="tasks seeded in the table")
    parser.add_argument("--k", type=int, default=4, help="completions per task")
    parser.add_argument("--overlap", type=int, default=1, help="labelers per task")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    parser.add_argument("--server", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database afterwards")
    args = parser.parse_args()

    url = create_database(args.server)
    proc = None
    try:
        upgrade(url, "head")
        seconds = seed(url, tasks=args.tasks, k=args.k, overlap=args.overlap, labelers=args.labelers)
        print(f"seeded {args.tasks} tasks (K={args.k}) and {args.labelers} labelers in {seconds:.1f} s")
        proc, base = start_server(url, args.workers)
        stats, elapsed = asyncio.run(drive(base, args.labelers, args.duration))
    finally:
        if proc is not None:
            proc.terminate()  # requests still queued for a pooled connection delay a graceful stop
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if not args.keep_db:
            drop_database(args.server, url)
    n_sub = len(stats["submit"])
    print(
        f"labelers={args.labelers} workers={args.workers} tasks={args.tasks} duration={elapsed:.1f}s: "
        f"{n_sub / elapsed:.1f} submissions/s; next p50 {pct_ms(stats['next'], 50):.1f} ms, "
        f"p99 {pct_ms(stats['next'], 99):.1f} ms; submit p50 {pct_ms(stats['submit'], 50):.1f} ms, "
        f"p99 {pct_ms(stats['submit'], 99):.1f} ms; empty nexts {len(stats['empty'])}; errors {len(stats['errors'])}"
    )


if __name__ == "__main__":
    main()
