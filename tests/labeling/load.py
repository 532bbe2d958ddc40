"""A small labeling load over real HTTP, with clients that misbehave the way real ones do, and the checks that
nothing was lost: labelers (threads) take tasks and submit rankings to a live server until no task is left,
sometimes losing the response (a timeout, then a retry with the same idempotency key), sometimes sending the same
submit twice in a row or twice at once. Every request is retried on a transport error or a 503 until a deadline.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Ranking, RankingTask, Role, TaskStatus, User, UserStatus
from app.security import Signer
from tests.factories import make_task
from tests.live import LiveServer

BEHAVIOURS = ("plain", "lost response", "twice", "twice at once")
RETRY_PAUSE_S = 0.05
EMPTY_ANSWERS_TO_STOP = 3


@dataclass
class Tally:
    """What the clients saw, shared by the labeler threads."""

    acks: list[tuple[int, int, int]] = field(default_factory=list)
    """(assignment id, ranking id, status) of every acknowledged submit (201, or 200 for a replay)."""
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, response: httpx.Response) -> None:
        with self.lock:
            self.statuses[response.status_code] += 1

    def problem(self, text: str) -> None:
        with self.lock:
            self.unexpected.append(text)


def seed(server: LiveServer, *, n_tasks: int, overlap: int, n_labelers: int) -> list[dict[str, str]]:
    """Tasks of K=4 and active labelers (rows made directly: no password hashing); their bearer headers."""
    signer = Signer(server.settings.secret_key.get_secret_value())
    with server.session() as session:
        for _ in range(n_tasks):
            make_task(session, k=4, overlap=overlap)
        labelers = [
            User(username=f"load{uuid.uuid4().hex[:8]}", password_hash="x", role=Role.labeler, status=UserStatus.active)
            for _ in range(n_labelers)
        ]
        session.add_all(labelers)
        session.flush()
        return [{"Authorization": f"Bearer {signer.issue_token(u.id, u.auth_epoch)}"} for u in labelers]


def send(client: httpx.Client, tally: Tally, deadline: float, method: str, url: str, **kw: object) -> httpx.Response:
    """The request, retried on a transport error or a 503 until it gets another answer (or the deadline)."""
    while True:
        try:
            response = client.request(method, url, **kw)  # type: ignore[arg-type]
        except httpx.TransportError:
            with tally.lock:
                tally.transport_errors += 1
        else:
            tally.saw(response)
            if response.status_code != 503:
                return response
        if time.monotonic() > deadline:
            raise TimeoutError(f"{method} {url}: no answer but errors and 503s before the deadline")
        time.sleep(RETRY_PAUSE_S)
        kw.pop("timeout", None)  # a retry waits for its answer


def _submit(client: httpx.Client, tally: Tally, deadline: float, assignment: dict, rng: random.Random) -> None:
    ids = [c["id"] for c in assignment["completions"]]
    rng.shuffle(ids)
    body = {"ranking": [[i] for i in ids], "idempotency_key": uuid.uuid4().hex}
    url = f"/api/v1/labeling/assignments/{assignment['assignment_id']}/ranking"
    behaviour = rng.choice(BEHAVIOURS)

    def once(**kw: object) -> httpx.Response:
        return send(client, tally, deadline, "POST", url, json=body, **kw)

    if behaviour == "lost response":  # the client gives up before the answer comes, then tries again
        answers = [once(timeout=httpx.Timeout(10, read=0.002))]
    elif behaviour == "twice":
        answers = [once(), once()]
    elif behaviour == "twice at once":
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda _: once(), range(2)))
    else:
        answers = [once()]
    ranking_ids = set()
    for answer in answers:
        if answer.status_code not in (200, 201):
            tally.problem(f"{behaviour} submit: {answer.status_code} {answer.text}")
            continue
        ranking_ids.add(answer.json()["id"])
        with tally.lock:
            tally.acks.append((assignment["assignment_id"], answer.json()["id"], answer.status_code))
    if len(ranking_ids) > 1:
        tally.problem(f"{behaviour} submit acknowledged as different rankings {sorted(ranking_ids)}")
    if behaviour != "lost response" and sorted(a.status_code for a in answers) not in ([201], [200, 201]):
        tally.problem(f"{behaviour} submit answered {[a.status_code for a in answers]}")


def run_labelers(
    base_url: str,
    headers: list[dict[str, str]],
    *,
    budget_s: float,
    seed_: int = 0,
    think_s: float = 0.0,
    tally: Tally | None = None,
) -> Tally:
    """Every labeler ranks until `next` has nothing left (204) or the budget is spent, thinking up to `think_s`
    before each submit."""
    tally = tally or Tally()
    deadline = time.monotonic() + budget_s

    def labeler(n: int) -> None:
        rng = random.Random(seed_ * 1000 + n)
        with httpx.Client(base_url=base_url, headers=headers[n], timeout=10) as client:
            quiet = 0
            while time.monotonic() < deadline:
                got = send(client, tally, deadline, "GET", "/api/v1/labeling/next")
                # a 204 can also mean every free task was row-locked by another labeler's `next` at that moment
                if got.status_code == 204:
                    quiet += 1
                    if quiet == EMPTY_ANSWERS_TO_STOP:
                        return
                    time.sleep(0.1)
                    continue
                quiet = 0
                if got.status_code != 200:
                    tally.problem(f"next: {got.status_code} {got.text}")
                    return
                time.sleep(rng.uniform(0, think_s))
                _submit(client, tally, deadline, got.json(), rng)
            tally.problem(f"labeler {n} still had tasks at the deadline")

    with ThreadPoolExecutor(len(headers)) as pool:
        for future in [pool.submit(labeler, n) for n in range(len(headers))]:
            try:
                future.result()
            except Exception as exc:  # noqa: BLE001 - reported with the rest
                tally.problem(f"{type(exc).__name__}: {exc}")
    return tally


def lost_or_extra(session: Session, tally: Tally, *, n_tasks: int, overlap: int) -> list[str]:
    """Stored rankings = acknowledged submits; every task holds exactly its overlap (none over it); no duplicates."""
    problems = []
    stored = {r.id: r for r in session.scalars(select(Ranking))}
    acked = {ranking_id for _, ranking_id, _ in tally.acks}
    if set(stored) != acked:
        problems.append(f"stored but never acknowledged: {sorted(set(stored) - acked)}; "
                        f"acknowledged but not stored: {sorted(acked - set(stored))}")  # fmt: skip
    for assignment_id, ranking_id, _ in tally.acks:
        if ranking_id in stored and stored[ranking_id].assignment_id != assignment_id:
            problems.append(f"ranking {ranking_id} acknowledged for assignment {assignment_id}")
    per_assignment = Counter(r.assignment_id for r in stored.values())
    per_labeler_task = Counter((r.task_id, r.labeler_id) for r in stored.values())
    problems += [f"assignment {a} has {n} rankings" for a, n in per_assignment.items() if n > 1]
    problems += [f"labeler {lt[1]} ranked task {lt[0]} {n} times" for lt, n in per_labeler_task.items() if n > 1]
    counts = dict(session.execute(select(Ranking.task_id, func.count()).group_by(Ranking.task_id)).all())
    tasks = list(session.scalars(select(RankingTask)))
    for task in tasks:
        n = counts.get(task.id, 0)
        if n != task.overlap or task.status != TaskStatus.complete or task.overlap != overlap:
            problems.append(f"task {task.id}: {n} rankings for an overlap of {task.overlap}, {task.status.value}")
    if len(tasks) != n_tasks:
        problems.append(f"{len(tasks)} tasks, {n_tasks} expected")
    return problems
