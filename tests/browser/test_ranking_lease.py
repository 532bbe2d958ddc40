"""Issue 15: a lease stays alive while the page is in use, counts down near its end, and no ranking is lost."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.models import Assignment, AssignmentStatus, Ranking, RankingTask, Role, UserStatus, utcnow
from app.services import users as user_service
from app.services.prompts import get_or_create_prompt
from app.services.tasks import NewCompletion, create_task
from tests.browser.a11y import assert_accessible
from tests.browser.conftest import login

pytestmark = pytest.mark.browser
PASSWORD = "browser-pass-123"


def _seed(live_server, username: str) -> int:
    with live_server.session() as s:
        user = user_service.create_user(
            s, username=username, password=PASSWORD, role=Role.labeler, status=UserStatus.active
        )
        prompt, _ = get_or_create_prompt(s, text=f"{username}: explain leases")
        create_task(s, prompt=prompt, completions=[NewCompletion(text=f"{username} out {i}") for i in range(4)])
        return user.id


def _assignment(live_server, user_id: int) -> Assignment:
    with live_server.session() as s:
        return s.scalars(select(Assignment).where(Assignment.labeler_id == user_id)).one()


def test_lease_is_kept_alive_counted_down_and_the_draft_survives_expiry(page, live_server):
    user_id = _seed(live_server, "lease-labeler")
    page.add_init_script("window.RANKLAB_RENEW_MS = 300")
    login(page, "lease-labeler", PASSWORD)
    page.goto("/label")
    page.wait_for_selector("#task:not([hidden]) #pool .output")
    a, b, c, d = (int(x) for x in page.locator("#pool .output").evaluate_all("els => els.map(e => e.dataset.id)"))
    # rank with the keyboard, rate and flag, and write a note: the draft
    for key in ("1", "Shift+Digit6", "2", "2", "3"):
        page.keyboard.press(key)
    page.fill("#note", "kept across a reload")

    # near the end of the lease (say the labeler read for 28 minutes): a countdown shows
    with live_server.session() as s:
        s.get(Assignment, _assignment(live_server, user_id).id).expires_at = utcnow() + timedelta(seconds=100)
    page.reload()
    page.wait_for_selector("#task:not([hidden]) .output")
    page.wait_for_function("document.getElementById('lease').textContent.startsWith('Lease ends in 1:')")
    assert "lease-warning" in page.locator("#lease").get_attribute("class")
    # the draft came back after the reload: ranks, rating, note
    placed = "els => els.map(s => Array.from(s.querySelectorAll('.output'), o => Number(o.dataset.id)))"
    assert page.locator("#slots .slot").evaluate_all(placed)[:3] == [[a], [b, c], [d]]
    assert page.locator(f'#task .output[data-id="{b}"] input[type=radio][value="6"]').is_checked()
    assert page.input_value("#note") == "kept across a reload"

    # in use: a key press renews the lease for another full term, and the countdown goes away
    page.locator(f'#task .output[data-id="{a}"]').focus()
    page.keyboard.press("j")
    page.wait_for_function("document.getElementById('lease').textContent.startsWith('lease until')")
    assert _assignment(live_server, user_id).expires_at > utcnow() + timedelta(minutes=25)

    # away too long: the lease ran out and was swept; Submit takes the task back (nobody took it) and stores all
    with live_server.session() as s:
        row = s.get(Assignment, _assignment(live_server, user_id).id)
        row.status, row.expires_at = AssignmentStatus.expired, utcnow() - timedelta(minutes=1)
        s.get(RankingTask, row.task_id).slots_taken = 0
    page.click("#submit-button")
    page.wait_for_function("document.getElementById('today-count').textContent === '1'")
    with live_server.session() as s:
        ranking = s.scalars(select(Ranking).where(Ranking.labeler_id == user_id)).one()
        assert ranking.buckets == [[a], [b, c], [d]] and ranking.note == "kept across a reload"
    assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('ranklab-draft-'))") == []


def test_a_lease_lost_to_another_labeler_keeps_the_ranking_on_screen(page, live_server):
    user_id = _seed(live_server, "lost-labeler")
    login(page, "lost-labeler", PASSWORD)
    page.goto("/label")
    page.wait_for_selector("#task:not([hidden]) #pool .output")
    page.keyboard.press("n")
    page.fill("#note", "all four are off topic")
    with live_server.session() as s:  # expired, swept, and the slot went to someone else
        row = s.get(Assignment, _assignment(live_server, user_id).id)
        row.status, row.expires_at = AssignmentStatus.expired, utcnow() - timedelta(minutes=1)
    page.click("#submit-button")
    page.wait_for_selector("#lost:not([hidden])")
    assert "cannot be stored" in page.locator("#status").inner_text()
    assert page.input_value("#note") == "all four are off topic"  # nothing vanished
    assert page.locator("#task").is_visible()
    assert_accessible(page)
    page.click("#lost-next")
    page.wait_for_selector("#lost", state="hidden")
