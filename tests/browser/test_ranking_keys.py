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


def test_a_labeler_lists_what_they_sent_and_revises_it(page, live_server):
    from app.models import AuditLog

    with live_server.session() as s:
        user = user_service.create_user(
            s, username="revise-labeler", password=PASSWORD, role=Role.labeler, status=UserStatus.active
        )
        user_id = user.id
        for n in (1, 2):
            prompt, _ = get_or_create_prompt(s, text=f"revise-labeler prompt {n}")
            create_task(s, prompt=prompt, completions=[NewCompletion(text=f"rev {n}.{i}") for i in range(4)])
    login(page, "revise-labeler", PASSWORD)
    page.wait_for_selector("#task:not([hidden]) #pool .output")
    first_prompt = page.locator("#prompt-text").inner_text()
    ids = [int(x) for x in page.locator("#pool .output").evaluate_all("els => els.map(e => e.dataset.id)")]
    for key in ("1", "2", "3", "4", "Enter"):
        page.keyboard.press(key)
    page.wait_for_function("document.getElementById('today-count').textContent === '1'")
    page.wait_for_function("document.querySelectorAll('#pool .output').length === 4")
    page.keyboard.press("1")  # a start on the second task: kept while revising the first
    page.click("#history summary")
    item = page.locator("#history-list li").first
    assert first_prompt.strip() in item.inner_text()
    item.locator("button.revise").click()
    page.wait_for_selector("#revising:not([hidden])")
    assert page.locator("#prompt-text").inner_text() == first_prompt
    placed = "els => els.map(s => Array.from(s.querySelectorAll('.output'), o => Number(o.dataset.id)))"
    assert page.locator("#slots .slot").evaluate_all(placed) == [[i] for i in ids]  # as sent
    page.locator(f'#task .output[data-id="{ids[3]}"] .rank-select').select_option("1")  # d is best after all
    page.fill("#note", "d was best, on second thought")
    page.click("#submit-button")
    page.wait_for_function(
        "document.getElementById('status').textContent === 'Revision saved. Your unsent ranking of this task is back.'"
    )
    page.wait_for_selector("#revising", state="hidden")
    assert page.locator("#prompt-text").inner_text() != first_prompt  # back to the task in hand, its start kept
    assert page.locator("#slots .output").count() == 1
    with live_server.session() as s:
        ranking = s.scalars(select(Ranking).where(Ranking.labeler_id == user_id)).one()
        assert ranking.buckets == [[ids[0], ids[3]], [ids[1]], [ids[2]]]
        assert ranking.note == "d was best, on second thought"
        assert s.scalars(select(AuditLog).where(AuditLog.action == "ranking.revise")).first() is not None


def test_skip_offers_the_common_reasons(page, live_server):
    with live_server.session() as s:
        user = user_service.create_user(
            s, username="skip-labeler", password=PASSWORD, role=Role.labeler, status=UserStatus.active
        )
        user_id = user.id
        for n in (1, 2):
            prompt, _ = get_or_create_prompt(s, text=f"skip-labeler prompt {n}")
            create_task(s, prompt=prompt, completions=[NewCompletion(text=f"skip {n}.{i}") for i in range(4)])
    login(page, "skip-labeler", PASSWORD)
    page.wait_for_selector("#task:not([hidden]) #pool .output")
    page.click("#skip-button")
    page.get_by_label("Not in a language I read well").check()
    page.click("#skip-confirm")
    page.wait_for_function("document.getElementById('status').textContent === 'Skipped.'")
    with live_server.session() as s:
        from app.models import Assignment, AssignmentStatus

        skipped = s.scalars(
            select(Assignment).where(Assignment.labeler_id == user_id, Assignment.status == AssignmentStatus.skipped)
        ).one()
        assert skipped.skip_reason == "Not in a language I read well"
