"""Template rendering shared by the HTML routes."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from starlette.routing import NoMatchFound

from app.config import ROOT_DIR
from app.deps import UserCard, may_rank
from app.models import User

templates = Jinja2Templates(directory=str(ROOT_DIR / "templates"))


# (label, route name, roles that see it); entries whose route does not exist yet are left out.
NAV = [
    ("Label", "labeling_page", {"labeler", "researcher", "admin"}),
    ("Guidelines", "guidelines_page", {"labeler", "researcher", "admin"}),
    ("Prompts", "prompts_page", {"researcher", "admin"}),
    ("Tasks", "tasks_page", {"researcher", "admin"}),
    ("Demonstrations", "demonstrations_page", {"researcher", "admin"}),
    ("Agreement", "dashboard_overview", {"researcher", "admin"}),
    ("Jobs", "jobs_page", {"researcher", "admin"}),
    ("Models", "models_page", {"researcher", "admin"}),
    ("Users", "admin_users_page", {"admin"}),
]


def nav_for(request: Request, user: User | UserCard | None) -> list[dict[str, str]]:
    """Navigation entries this user may see."""
    if user is None:
        return []
    entries = []
    for label, name, roles in NAV:
        if user.role.value not in roles or (name == "labeling_page" and not may_rank(user)):
            continue
        try:
            entries.append({"label": label, "href": str(request.app.url_path_for(name))})
        except NoMatchFound:
            continue
    return entries


def excerpt(text: str, limit: int) -> str:
    """The text, or its first `limit` characters and how long the whole is (the task page shows it whole)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit].rstrip()}… ({len(text):,} characters)"


def render(
    request: Request, name: str, *, user: User | UserCard | None = None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """Render a template with the common context (user, CSRF token, and the outcome of the last post, once)."""
    browser = request.state.session
    flash, browser.flash = browser.flash, ""
    context.update(user=user, csrf_token=browser.csrf, nav=nav_for(request, user), flash=flash)
    return templates.TemplateResponse(request, name, context, status_code=status_code)


MAX_FLASH = 500
"""A flash message longer than this is cut (it travels in the session cookie)."""


def redirect_after_post(request: Request, url: str, *, message: str) -> RedirectResponse:
    """Post/redirect/get: a successful form post answers 303 to a page, which says `message` once (a reload of that
    page neither repeats the post nor the message)."""
    request.state.session.flash = message[:MAX_FLASH]
    return RedirectResponse(url, status_code=303)
