"""Issue 15: Enter on a focused link or button does what the link or button does, never submits the ranking."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.models import Ranking, Role, UserStatus
from app.services import users as user_service
from app.services.prompts import get_or_create_prompt
from app.services.tasks import NewCompletion, create_task
from tests.browser.conftest import login

pytestmark = pytest.mark.browser
PASSWORD = "browser-pass-123"


def test_enter_on_a_focused_button_or_link_is_not_submit(page, live_server):
    with live_server.session() as s:
        user = user_service.create_user(
            s, username="enter-labeler", password=PASSWORD, role=Role.labeler, status=UserStatus.active
        )
        user_id = user.id
        prompt, _ = get_or_create_prompt(s, text="enter-labeler: which answer is kind")
        create_task(s, prompt=prompt, completions=[NewCompletion(text=f"enter out {i}") for i in range(4)])
    login(page, "enter-labeler", PASSWORD)
    page.goto("/label")
    page.wait_for_selector("#task:not([hidden]) #pool .output")
    for key in ("1", "2", "3", "4"):  # a complete ranking: an Enter that submitted would store it
        page.keyboard.press(key)

    page.focus("#reader-button")
    page.keyboard.press("Enter")
    assert page.locator("#reader").is_visible()  # the button did its job

    page.focus("#guidelines-link")
    with page.context.expect_page() as guidelines:
        page.keyboard.press("Enter")
    assert guidelines.value.url.endswith("/guidelines")
    guidelines.value.close()

    page.focus("#skip-button")
    page.keyboard.press("Enter")
    assert page.locator("#skip-dialog").is_visible()
    page.keyboard.press("Escape")

    page.wait_for_timeout(300)
    with live_server.session() as s:
        assert s.scalar(select(func.count()).select_from(Ranking).where(Ranking.labeler_id == user_id)) == 0
    assert page.locator("#today-count").inner_text() == "0"
    # on an output, Enter still submits
    page.locator("#slots .output").first.focus()
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('today-count').textContent === '1'")
