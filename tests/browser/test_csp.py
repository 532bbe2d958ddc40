"""The pages run under the app's Content-Security-Policy: their scripts, styles and charts load, nothing is refused."""

from __future__ import annotations

import pytest

from app.models import Role, UserStatus
from app.services import users as user_service
from app.services.prompts import get_or_create_prompt
from app.services.tasks import NewCompletion, create_task
from tests.browser.conftest import login

pytestmark = pytest.mark.browser
PASSWORD = "browser-pass-123"


def test_pages_under_the_csp(browser, live_server) -> None:  # type: ignore[no-untyped-def]
    with live_server.session() as s:
        user_service.create_user(s, username="csp-lab", password=PASSWORD, role=Role.labeler, status=UserStatus.active)
        user_service.create_user(s, username="csp-res", password=PASSWORD, role=Role.researcher)
        prompt, _ = get_or_create_prompt(s, text="csp prompt: explain tides")
        create_task(s, prompt=prompt, completions=[NewCompletion(text=f"csp output {i}") for i in range(4)])
    for username, paths in (
        ("csp-lab", ["/label", "/guidelines"]),
        ("csp-res", ["/dashboard", "/jobs", "/tasks", "/demonstrations", "/dashboard/disagreements"]),
    ):
        context = browser.new_context(base_url=live_server.base_url)
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda msg, p=problems: p.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc, p=problems: p.append(str(exc)))
        login(page, username, PASSWORD)
        for path in paths:
            page.goto(path)
            page.wait_for_load_state("networkidle")
        context.close()
        assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
        assert not [p for p in problems if "Error" in p and "404" not in p], problems
