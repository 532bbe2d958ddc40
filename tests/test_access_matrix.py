"""The access matrix: every route the app serves x every caller x ownership, each cell's status declared once.

Routes are read from the app's route table, so a new route fails `test_every_route_is_declared` until it has a rule
here. A rule names who may call the route (`public`, `user`: anyone logged in, `labeler`: whoever may rank,
`researcher`, `admin`) and the statuses an allowed caller gets with the request the matrix sends (no body, path ids
of real rows). Everyone else is refused: anonymous callers with 401 (API) or a redirect to the login page (pages),
logged-in callers with 403. Each cell is sent with a bearer token (API routes) and with a session cookie plus its
CSRF token; every write without the CSRF token is refused as well.

Ownership: the assignment routes are called on another labeler's assignment (403 for every caller who may rank),
and `test_own_assignments_only` shows the owner gets through. A labeler's responses never carry gold answers, other
labelers' rankings or agreement scores (`test_a_labeler_never_sees_gold_other_rankings_or_agreement`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Assignment, JobKind, Ranking, Role, TaskKind, User, UserStatus
from app.security import CSRF_HEADER, SESSION_COOKIE, SessionData
from app.services import assignment as assignment_service
from app.services import jobs as job_service
from app.services import rankings as ranking_service
from app.services import schedules as schedule_service
from app.services import screening as screening_service
from app.services import tasks as task_service
from app.services.rankings import RankingSubmission
from tests.factories import make_task

CALLERS = ("anonymous", "screening", "active", "paused", "researcher", "admin")
MAY = {
    "public": set(CALLERS),
    "user": set(CALLERS) - {"anonymous"},
    "labeler": {"screening", "active", "researcher", "admin"},
    "researcher": {"researcher", "admin"},
    "admin": {"admin"},
}
LABELERS = ("screening", "active", "paused")
MISSING_ID = 987_654_321
SAME_FOR_EVERYONE = {"GET /api/openapi.json", "GET /api/docs", "GET /static/{path}", "GET /favicon.ico"}
CSRF = "matrix-csrf-token"


@dataclass(frozen=True)
class Rule:
    who: str
    """The least privileged callers who may use the route (a key of MAY)."""
    ok: frozenset[int]
    """What an allowed caller gets with the matrix's request (no body; path ids of rows that exist)."""
    by_caller: dict[str, int] = field(default_factory=dict)
    """Cells that differ from `ok` (e.g. the login page redirects a logged-in caller)."""
    body: dict[str, Any] | None = None
    """A JSON body, where the check to prove comes after the body's validation (ownership)."""


def rule(who: str, *ok: int, body: dict[str, Any] | None = None, **by_caller: int) -> Rule:
    return Rule(who, frozenset(ok), by_caller, body)


RANKING = {"ranking": [[1], [2], [3], [4]], "idempotency_key": "matrix"}
DEMONSTRATION = {"content": "An answer.", "idempotency_key": "matrix"}


# Writes without a body answer 422 once the caller is let through; a second caller may find the row changed (409)
# or gone (404). Rounds need a trained model to exist, so the matrix names a round that does not (404).
RULES: dict[str, Rule] = {
    "GET /api/openapi.json": rule("public", 200),
    "GET /api/docs": rule("public", 200),
    "GET /static/{path}": rule("public", 200),
    "GET /healthz": rule("public", 200),
    "GET /favicon.ico": rule("public", 200),
    "GET /": rule("public", 200, anonymous=303),
    "GET /login": rule("public", 303, anonymous=200),
    "POST /login": rule("public", 422),
    "POST /logout": rule("public", 303),
    "POST /api/v1/auth/token": rule("public", 422),
    "GET /account/password": rule("user", 200),
    "POST /account/password": rule("user", 422),
    "POST /api/v1/auth/password": rule("user", 422),
    "GET /guidelines": rule("user", 200),
    "GET /label": rule("user", 200),  # whoever may not rank gets a page saying why (issue 21), with the menu
    "GET /api/v1/labeling/next": rule("labeler", 200, 204),
    "GET /api/v1/labeling/stats": rule("labeler", 200),
    "GET /api/v1/labeling/rankings": rule("labeler", 200),
    # another labeler's ranking: refused to everyone (a labeler sees and revises only their own)
    "GET /api/v1/labeling/rankings/{ranking_id}": rule("labeler", 403),
    "PUT /api/v1/labeling/rankings/{ranking_id}": rule("labeler", 403, body=RANKING),
    "POST /api/v1/labeling/assignments/{assignment_id}/lease": rule("labeler", 403),
    "GET /admin/users": rule("admin", 200),
    "GET /metrics": rule("admin", 200),
    "POST /admin/users": rule("admin", 422),
    "POST /admin/users/{user_id}/password": rule("admin", 422),
    "POST /admin/users/{user_id}/role": rule("admin", 422),
    "POST /admin/users/{user_id}/sign-out": rule("admin", 303),  # post/redirect/get
    # another labeler's assignment: refused to everyone (the owner: test_own_assignments_only)
    "POST /api/v1/labeling/assignments/{assignment_id}/ranking": rule("labeler", 403, body=RANKING),
    "POST /api/v1/labeling/assignments/{assignment_id}/skip": rule("labeler", 403, body={"reason": "unclear"}),
    "POST /api/v1/labeling/assignments/{assignment_id}/demonstration": rule("labeler", 403, body=DEMONSTRATION),
    "GET /api/v1/labeling/demonstrations": rule("labeler", 200),
    "PUT /api/v1/labeling/demonstrations/{demonstration_id}": rule("labeler", 404, body={"content": "x"}),
    "POST /api/v1/demonstrations/tasks": rule("researcher", 422),
    "GET /api/v1/demonstrations": rule("researcher", 200),
    "GET /api/v1/demonstrations/stats": rule("researcher", 200),
    "GET /api/v1/demonstrations/{demonstration_id}": rule("researcher", 404),
    "POST /api/v1/demonstrations/{demonstration_id}/review": rule("researcher", 404, body={"action": "accept"}),
    "GET /api/v1/export/demonstrations": rule("researcher", 200),
    "POST /guidelines": rule("researcher", 422),
    "POST /api/v1/users": rule("admin", 422),
    "GET /api/v1/users": rule("researcher", 200),
    "PATCH /api/v1/users/{user_id}": rule("researcher", 422),
    "POST /api/v1/users/{user_id}/sign-out": rule("admin", 204),
    "POST /api/v1/users/{user_id}/screening-decision": rule("researcher", 422),
    "POST /api/v1/users/{user_id}/labeler-action": rule("researcher", 422),
    "POST /api/v1/prompts": rule("researcher", 422),
    "POST /api/v1/prompts/import": rule("researcher", 422),
    "GET /api/v1/prompts": rule("researcher", 200),
    "POST /api/v1/tasks": rule("researcher", 422),
    "GET /api/v1/tasks": rule("researcher", 200),
    "GET /api/v1/tasks/{task_id}": rule("researcher", 200),
    "POST /api/v1/tasks/{task_id}/promote-gold": rule("researcher", 200, 409),
    "GET /prompts": rule("researcher", 200),
    "POST /prompts/upload": rule("researcher", 422),
    "GET /tasks": rule("researcher", 200),
    "POST /tasks/upload": rule("researcher", 422),
    "GET /tasks/{task_id}": rule("researcher", 200),
    "GET /demonstrations": rule("researcher", 200),
    "POST /demonstrations/{demonstration_id}/review": rule("researcher", 422),  # no action given
    "POST /prompts/demonstration-tasks": rule("researcher", 303),  # no prompt given: said on the prompts page
    "POST /api/v1/jobs": rule("researcher", 422),
    "GET /api/v1/jobs": rule("researcher", 200),
    "GET /api/v1/jobs/{job_id}": rule("researcher", 200),
    "GET /api/v1/jobs/{job_id}/file": rule("researcher", 409),  # the job has not finished
    "POST /api/v1/jobs/{job_id}/cancel": rule("researcher", 200, 409),
    "GET /api/v1/workers": rule("researcher", 200),
    "GET /api/v1/storage": rule("researcher", 200),
    "GET /api/v1/schedules": rule("researcher", 200),
    "POST /api/v1/schedules": rule("researcher", 422),
    "GET /api/v1/schedules/{schedule_id}": rule("researcher", 200, 404),
    "PATCH /api/v1/schedules/{schedule_id}": rule("researcher", 422),
    "DELETE /api/v1/schedules/{schedule_id}": rule("researcher", 204, 404),
    "GET /api/v1/models": rule("researcher", 200),
    "GET /jobs": rule("researcher", 200),
    "GET /jobs/{job_id}": rule("researcher", 200),
    "GET /schedules": rule("researcher", 200),
    "GET /models": rule("researcher", 200),
    "POST /api/v1/rounds": rule("researcher", 422),
    "GET /api/v1/rounds": rule("researcher", 200),
    "GET /api/v1/rounds/{round_id}": rule("researcher", 404),
    "POST /api/v1/rounds/{round_id}/cancel": rule("researcher", 404),
    "GET /api/v1/agreement/labelers": rule("researcher", 200),
    "GET /api/v1/agreement/labelers/{user_id}": rule("researcher", 200),
    "GET /api/v1/agreement/overview": rule("researcher", 200),
    "GET /api/v1/agreement/tasks": rule("researcher", 200),
    "GET /api/v1/agreement/matrix": rule("researcher", 200),
    "GET /api/v1/agreement/disagreements": rule("researcher", 200),
    "GET /api/v1/export/comparisons": rule("researcher", 200),
    "GET /dashboard": rule("researcher", 200),
    "GET /dashboard/labelers": rule("researcher", 200),
    "GET /dashboard/labelers/{user_id}": rule("researcher", 200),
    "GET /dashboard/matrix": rule("researcher", 200),
    "GET /dashboard/disagreements": rule("researcher", 200),
    "POST /dashboard/labelers/{user_id}/action": rule("researcher", 422),
    "POST /dashboard/tasks/{task_id}/adjudicate": rule("researcher", 303),
    "POST /dashboard/tasks/{task_id}/promote": rule("researcher", 303, 409),
}


def served_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path) of every route in the app's route table (HEAD goes with GET)."""
    for context in iter_route_contexts(app.routes):
        methods = getattr(context, "methods", None) or {"GET"}  # a mount (static files) serves GET
        for method in sorted(set(methods) - {"HEAD"}):
            yield method, str(context.path_format)


def is_page(path: str) -> bool:
    return not path.startswith("/api/") and path != "/healthz"


_seq = itertools.count()


@dataclass
class World:
    users: dict[str, User]
    other_labeler: User
    ids: dict[str, Any]
    other_assignment: int
    own_assignments: dict[str, int]
    secrets: list[str]
    seen_by_labelers: list[tuple[str, str]] = field(default_factory=list)


def _user(db: Session, role: Role, status: UserStatus) -> User:
    user = User(username=f"matrix{next(_seq)}", password_hash="x", role=role, status=status)
    db.add(user)
    db.flush()
    return user


@pytest.fixture
def world(db: Session, settings: Any) -> World:
    """Callers (rows made directly: no password hashing), another labeler's assignment and ranking, gold answers."""
    users = {
        "screening": _user(db, Role.labeler, UserStatus.screening),
        "active": _user(db, Role.labeler, UserStatus.active),
        "paused": _user(db, Role.labeler, UserStatus.paused),
        "researcher": _user(db, Role.researcher, UserStatus.active),
        "admin": _user(db, Role.admin, UserStatus.active),
    }
    other = _user(db, Role.labeler, UserStatus.active)
    secret_note, gold_note = f"NOTE-BY-ANOTHER-LABELER-{next(_seq)}", f"GOLD-ANSWER-NOTE-{next(_seq)}"
    for _ in range(2):
        make_task(db, k=4, overlap=3)
    # the other labeler ranks and holds tasks before any gold exists (no hidden gold check comes first)
    ranked = _rank(db, settings, other, note=secret_note)
    other_assignment = _assign(db, settings, other)
    for kind in (TaskKind.screening, TaskKind.gold):
        screening_service.create_task_with_gold(
            db,
            spec=task_service.ExternalTask(
                prompt=f"Check prompt {next(_seq)}", completions=["w", "x", "y", "z"], kind=kind
            ),  # fmt: skip
            gold_ranking=None,
            created_by=users["researcher"],
        )
        _rank(db, settings, users["researcher"], note=gold_note)
    own = {name: _assign(db, settings, users[name]) for name in ("screening", "active")}
    job = job_service.enqueue_job(db, kind=JobKind.export, params={})
    schedule = schedule_service.create_schedule(
        db, name=f"matrix{next(_seq)}", kind=JobKind.export, params={}, cron="0 3 * * *"
    )
    ids = {
        "ranking_id": db.scalar(select(Ranking.id).where(Ranking.labeler_id == other.id).limit(1)),
        "user_id": other.id,
        "task_id": ranked,
        "job_id": job.id,
        "schedule_id": schedule.id,
        "round_id": MISSING_ID,
        "demonstration_id": MISSING_ID,
        "assignment_id": other_assignment,
        "path": "css/ranklab.css",
    }
    db.commit()  # the savepoint only: a refused request's rollback must not take the world with it
    return World(users, other, ids, other_assignment, own, [secret_note, gold_note, other.username])


def _assign(db: Session, settings: Any, labeler: User) -> int:
    got = assignment_service.next_assignment_view(db, labeler=labeler, settings=settings)
    assert got is not None, f"no task for {labeler.username}"
    return got[0].id


def _rank(db: Session, settings: Any, labeler: User, *, note: str) -> int:
    """`labeler` ranks the task they are served next."""
    assignment = assignment_service.next_assignment_view(db, labeler=labeler, settings=settings)
    assert assignment is not None, f"no task for {labeler.username}"
    order = [[cid] for cid in assignment[0].display_order]
    ranking_service.submit_ranking(
        db,
        labeler=labeler,
        assignment_id=assignment[0].id,
        submission=RankingSubmission(ranking=order, note=note, idempotency_key=f"k{next(_seq)}"),
        settings=settings,
    )
    db.flush()
    return assignment[0].task_id


def call(client: TestClient, app: FastAPI, world: World, caller: str, key: str, mode: str) -> Response:
    """One cell: `mode` is "bearer", "cookie" (with the CSRF header) or "cookie-no-csrf"."""
    method, path = key.split(" ", 1)
    url = path.format(**world.ids)
    headers = {"Accept": "text/html"} if is_page(path) else {"Accept": "application/json"}
    client.cookies.clear()
    user = world.users.get(caller)
    if user is not None and mode == "bearer":
        headers["Authorization"] = f"Bearer {app.state.signer.issue_token(user.id, user.auth_epoch)}"
    elif mode.startswith("cookie"):
        uid, epoch = (user.id, user.auth_epoch) if user is not None else (None, 0)
        client.cookies.set(SESSION_COOKIE, app.state.signer.dump_session(SessionData(CSRF, uid, epoch)))
        if mode == "cookie":
            headers[CSRF_HEADER] = CSRF
    response = client.request(method, url, headers=headers, json=RULES[key].body, follow_redirects=False)
    if caller in LABELERS:
        world.seen_by_labelers.append((f"{method} {url} as {caller}", response.text))
    return response


def expected(rule_: Rule, caller: str, path: str) -> set[int]:
    if caller in rule_.by_caller:
        return {rule_.by_caller[caller]}
    if caller in MAY[rule_.who]:
        return set(rule_.ok)
    if caller == "anonymous":
        return {303} if is_page(path) else {401}
    return {403}


def test_every_route_is_declared(app: FastAPI) -> None:
    served = {f"{method} {path}" for method, path in served_routes(app)}
    undeclared = sorted(served - RULES.keys())
    assert not undeclared, (
        "routes without an access rule in tests/test_access_matrix.py RULES (declare who may call each):\n  "
        + "\n  ".join(undeclared)
    )
    gone = sorted(RULES.keys() - served)
    assert not gone, f"rules for routes the app no longer serves: {gone}"


def test_access_matrix(app: FastAPI, client: TestClient, world: World) -> None:
    wrong = []
    for key, rule_ in RULES.items():
        method, path = key.split(" ", 1)
        # pages are used with the cookie; the API with a token, and with the cookie by the pages' scripts (writes)
        modes = ("cookie",) if is_page(path) else ("bearer",) if method == "GET" else ("bearer", "cookie")
        for caller, mode in itertools.product(CALLERS, modes):
            if caller == "anonymous" and mode == "bearer":
                continue
            got = call(client, app, world, caller, key, mode).status_code
            if got not in expected(rule_, caller, path):
                wrong.append(f"{key} as {caller} ({mode}): {got}, declared {sorted(expected(rule_, caller, path))}")
    assert not wrong, "cells that differ from RULES:\n  " + "\n  ".join(wrong)


def test_writes_without_the_csrf_token_are_refused(app: FastAPI, client: TestClient, world: World) -> None:
    """A cookie alone never changes anything: every write by a caller the route lets in needs the CSRF token."""
    wrong = []
    for key, rule_ in RULES.items():
        method, path = key.split(" ", 1)
        if method == "GET" or key == "POST /api/v1/auth/token":  # the token route takes no cookie
            continue
        for caller in sorted(MAY[rule_.who] - {"anonymous"}):
            got = call(client, app, world, caller, key, "cookie-no-csrf").status_code
            if got != 403:
                wrong.append(f"{key} as {caller}: {got}")
    assert not wrong, "writes that went through on a cookie without its CSRF token:\n  " + "\n  ".join(wrong)


def test_own_assignments_only(app: FastAPI, client: TestClient, world: World, db: Session) -> None:
    """The owner may rank or skip their assignment (the matrix shows that everyone else gets 403)."""
    for (caller, assignment_id), action in zip(world.own_assignments.items(), ("ranking", "skip"), strict=True):
        user = world.users[caller]
        headers = {"Authorization": f"Bearer {app.state.signer.issue_token(user.id, user.auth_epoch)}"}
        order = [[cid] for cid in db.get(Assignment, assignment_id).display_order]  # type: ignore[union-attr]
        body = {"ranking": order, "idempotency_key": "own"} if action == "ranking" else {"reason": "unclear"}
        done = client.post(f"/api/v1/labeling/assignments/{assignment_id}/{action}", json=body, headers=headers)
        assert done.status_code == (201 if action == "ranking" else 200), (caller, done.text)


def test_a_labeler_never_sees_gold_other_rankings_or_agreement(app: FastAPI, client: TestClient, world: World) -> None:
    """Every response a labeler got in the matrix and in ranking its own tasks (screening gold included)."""
    for caller in LABELERS:
        for key, _rule in RULES.items():
            method, path = key.split(" ", 1)
            if method == "GET" and key not in SAME_FOR_EVERYONE:
                call(client, app, world, caller, key, "cookie")
    for caller in ("screening", "active"):
        user = world.users[caller]
        headers = {"Authorization": f"Bearer {app.state.signer.issue_token(user.id, user.auth_epoch)}"}
        for _ in range(3):
            got = client.get("/api/v1/labeling/next", headers=headers)
            world.seen_by_labelers.append((f"next as {caller}", got.text))
            if got.status_code != 200:
                break
            body = got.json()
            ranking = [[c["id"]] for c in body["completions"]]
            done = client.post(
                f"/api/v1/labeling/assignments/{body['assignment_id']}/ranking",
                json={"ranking": ranking, "idempotency_key": f"leak{next(_seq)}"},
                headers=headers,
            )
            assert done.status_code == 201, done.text
            world.seen_by_labelers.append((f"submit as {caller}", done.text))
    assert len(world.seen_by_labelers) > 40
    researcher = world.users["researcher"]
    headers = {"Authorization": f"Bearer {app.state.signer.issue_token(researcher.id, researcher.auth_epoch)}"}
    shown = client.get(f"/api/v1/tasks/{world.ids['task_id']}", headers=headers).text
    assert world.secrets[0] in shown, "the other labeler's note should be there for researchers to see"
    leaks = [
        f"{where}: {word!r}"
        for where, text in world.seen_by_labelers
        for word in [*world.secrets, "gold", "agreement", "kappa", "krippendorff"]
        if word.lower() in text.lower()
    ]
    assert not leaks, "a labeler's response carried what only researchers may see:\n  " + "\n  ".join(leaks)
