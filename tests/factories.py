"""Factories that build test data through the services, plus login helpers."""

from __future__ import annotations

import itertools
import re

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import Role, User, UserStatus
from app.services import users as user_service

PASSWORD = "correct-horse-battery"
_seq = itertools.count(1)


class Factory:
    """Creates rows with unique names inside the test's transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def user(self, role: Role = Role.labeler, status: UserStatus | None = None, username: str | None = None) -> User:
        name = username or f"{role.value}{next(_seq)}"
        user = user_service.create_user(self.session, username=name, password=PASSWORD, role=role, status=status)
        self.session.flush()
        return user

    def labeler(self, status: UserStatus = UserStatus.active) -> User:
        return self.user(Role.labeler, status)

    def researcher(self) -> User:
        return self.user(Role.researcher)

    def admin(self) -> User:
        return self.user(Role.admin)


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(
        r'<meta name="csrf-token" content="([^"]+)"', html
    )
    assert match, "no CSRF token in page"
    return match.group(1)


def browser_login(client: TestClient, user: User, password: str = PASSWORD) -> str:
    """Log in through the HTML form; returns the session's CSRF token."""
    page = client.get("/login")
    resp = client.post(
        "/login",
        data={"username": user.username, "password": password, "csrf_token": csrf_from(page.text), "next": "/"},
        follow_redirects=False,
    )
    assert resp.status_code == 303, resp.text
    return csrf_from(client.get("/").text)


def token_headers(client: TestClient, user: User, password: str = PASSWORD) -> dict[str, str]:
    """Bearer headers from the OAuth2 password flow."""
    resp = client.post("/api/v1/auth/token", data={"username": user.username, "password": password})
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def make_task(
    session: Session,
    *,
    k: int = 4,
    kind: str = "production",
    overlap: int = 1,
    prompt_text: str | None = None,
    priority: int = 0,
):  # -> app.models.RankingTask
    """A ranking task with k short completions (through app.services.tasks.create_task)."""
    from app.models import TaskKind
    from app.services.prompts import get_or_create_prompt
    from app.services.tasks import NewCompletion, create_task

    n = next(_seq)
    prompt, _ = get_or_create_prompt(session, text=prompt_text or f"Prompt number {n}: say something.")
    completions = [NewCompletion(text=f"answer {i + 1} to prompt {n}") for i in range(k)]
    task = create_task(
        session, prompt=prompt, completions=completions, kind=TaskKind(kind), overlap=overlap, priority=priority
    )
    session.flush()
    return task
