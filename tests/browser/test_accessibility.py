"""Issue 15: every page passes axe-core with no serious or critical violation, for each role that sees it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.models import Role, UserStatus
from app.services import users as user_service
from app.services.prompts import get_or_create_prompt
from app.services.tasks import NewCompletion, create_task
from tests.browser.a11y import violations
from tests.browser.conftest import login

pytestmark = pytest.mark.browser
PASSWORD = "browser-pass-123"
WIDE_LINE = "result = compute(" + ", ".join(f"argument_{i}" for i in range(40)) + ")"
ROUTES = Path(__file__).parents[2] / "app" / "routes"
PAGE_ROUTE = re.compile(r'@router\.get\(\s*"([^"]*)",\s*response_class=HTMLResponse')


def _seed(live_server) -> dict[str, int]:
    with live_server.session() as s:
        researcher = user_service.create_user(s, username="a11y-res", password=PASSWORD, role=Role.researcher)
        user_service.create_user(s, username="a11y-admin", password=PASSWORD, role=Role.admin)
        lab = user_service.create_user(
            s, username="a11y-lab", password=PASSWORD, role=Role.labeler, status=UserStatus.active
        )
        # no gold rankings here: test_dashboards (which runs after this file) reads the pooled agreement figures
        del researcher
        # a wide code block in the prompt and in an output: it scrolls sideways, so it must take the focus (issue 21)
        prompt, _ = get_or_create_prompt(s, text=f"a11y-lab: explain **tides**\n\n```\ncode\n{WIDE_LINE}\n```")
        outputs = [
            NewCompletion(text=f"a11y *out* {i}" + (f"\n\n```\n{WIDE_LINE}\n```" if i == 0 else "")) for i in range(4)
        ]
        task = create_task(s, prompt=prompt, completions=outputs)
        return {"task_id": task.id, "user_id": lab.id}


def test_every_page_route_is_checked() -> None:
    """A new page must be added to the sweep below."""
    found = set()
    for module in ROUTES.glob("*.py"):
        prefix = {"dashboard.py": "/dashboard", "admin_pages.py": "/admin"}.get(module.name, "")
        found |= {prefix + path for path in PAGE_ROUTE.findall(module.read_text())}
    assert found == set(PAGES), found ^ set(PAGES)


PAGES = {
    "/login": None,
    "/api/docs": None,  # Swagger UI, with two operations opened and tried out (_open_api_docs)
    "/": "a11y-lab",
    "/label": "a11y-lab",
    "/guidelines": "a11y-res",
    "/account/password": "a11y-lab",
    "/prompts": "a11y-res",
    "/tasks": "a11y-res",
    "/tasks/{task_id}": "a11y-res",
    "/demonstrations": "a11y-res",
    "/dashboard": "a11y-res",
    "/dashboard/labelers": "a11y-res",
    "/dashboard/labelers/{user_id}": "a11y-res",
    "/dashboard/matrix": "a11y-res",
    "/dashboard/disagreements": "a11y-res",
    "/jobs": "a11y-res",
    "/jobs/{job_id}": None,  # checked in test_jobs_page (assert_accessible on a queued job)
    "/schedules": "a11y-res",
    "/models": "a11y-res",
    "/admin/users": "a11y-admin",
}


PHONE_PAGES = {"/login", "/", "/label", "/guidelines", "/account/password", "/dashboard", "/tasks/{task_id}"}
"""What is used on a phone: the labelers' pages, and a glance at the dashboard or a task."""


@pytest.mark.parametrize("viewport", [(1280, 900), (390, 844)], ids=["desktop", "phone"])
def test_pages_have_no_serious_accessibility_violations(browser, live_server, viewport):
    ids = _seed(live_server) if viewport[0] == 1280 else _ids(live_server)
    found: list[str] = []
    by_user: dict[str | None, list[str]] = {}
    for path, who in PAGES.items():
        if path == "/jobs/{job_id}" or (viewport[0] < 640 and path not in PHONE_PAGES):
            continue
        by_user.setdefault(who, []).append(path.format(**ids))
    for who, paths in by_user.items():
        context = browser.new_context(
            base_url=live_server.base_url, viewport={"width": viewport[0], "height": viewport[1]}, bypass_csp=True
        )
        page = context.new_page()
        try:
            if who is not None:
                login(page, who, PASSWORD)
            for path in paths:
                page.goto(path)
                page.wait_for_load_state("load")
                if path == "/label":
                    page.wait_for_selector("#task:not([hidden]) .output")
                    page.wait_for_function(  # page.js marks scrolling code blocks focusable a frame after rendering
                        "[...document.querySelectorAll('.markdown pre')].filter(p => p.offsetParent)"
                        ".every(p => p.tabIndex === 0)"
                    )
                if path == "/api/docs":
                    _open_api_docs(page)
                found += [f"{path} as {who}: {v}" for v in violations(page)]
            if who == "a11y-lab":  # the ranking page's dialogs and panels, open
                page.goto("/label")
                page.wait_for_selector("#task:not([hidden]) .output")
                page.click("#reader-button")
                found += [f"/label side by side: {v}" for v in violations(page)]
        finally:
            context.close()
    assert not found, "\n".join(found)


def _open_api_docs(page) -> None:  # type: ignore[no-untyped-def]
    """Wait for Swagger UI to render the operations, then open two and press "Try it out" on both, so the sweep sees
    the expanded markup (parameters, request body editor, responses) as well as the list."""
    page.wait_for_selector(".opblock-summary-path", timeout=15_000)
    for method, api_path in (("post", "/api/v1/jobs"), ("get", "/api/v1/jobs")):
        op = page.locator(f'.opblock-{method}:has(.opblock-summary-path[data-path="{api_path}"])')
        op.locator(".opblock-summary-control").click()
        op.locator("button.try-out__btn").click()
        op.locator("button.execute").wait_for()
    assert page.locator(".opblock.is-open").count() == 2
    assert "#/jobs/" in page.url  # deep linking still names the open operation
    # api-docs.js names the tried-out controls after each render (a MutationObserver, one frame later)
    page.wait_for_selector('.opblock-post.is-open textarea[aria-label="Request body"]')
    page.wait_for_selector('.opblock-get.is-open tr[data-param-name="status"] select[aria-label]')


def _ids(live_server) -> dict[str, int]:
    from sqlalchemy import select

    from app.models import Prompt, RankingTask, User

    with live_server.session() as s:
        prompt = s.scalars(select(Prompt).where(Prompt.text.startswith("a11y-lab:"))).one()
        task = s.scalars(select(RankingTask).where(RankingTask.prompt_id == prompt.id)).one()
        user = s.scalars(select(User).where(User.username == "a11y-lab")).one()
        return {"task_id": task.id, "user_id": user.id}
