"""Issue 15: a straight drag lands in the slot aimed at (slots keep their size while an output is dragged)."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import select

from app.models import Ranking, Role, UserStatus
from app.services import users as user_service
from app.services.prompts import get_or_create_prompt
from app.services.tasks import NewCompletion, create_task
from tests.browser.conftest import login, only_new_tasks

pytestmark = pytest.mark.browser
PASSWORD = "browser-pass-123"


@contextmanager
def _the_only_open_task(live_server, username: str, texts: list[str]):  # type: ignore[no-untyped-def]
    """A labeler and one task, with every other open task closed meanwhile (eval tasks left by other tests come
    before production ones in a labeler's queue)."""
    with only_new_tasks(live_server):
        with live_server.session() as s:
            user_service.create_user(
                s, username=username, password=PASSWORD, role=Role.labeler, status=UserStatus.active
            )
            prompt, _ = get_or_create_prompt(s, text=f"{username}: rank these")
            create_task(s, prompt=prompt, completions=[NewCompletion(text=t) for t in texts])
        yield


def _straight_drag(page, card, target) -> None:
    """One drag, aimed where the slot was before it began, at the slot's upper part, never retried.

    The page is tall enough that the output and the slot are both on screen without scrolling.
    """
    box = target.bounding_box()
    handle = card.locator(".drag-handle").bounding_box()
    assert 0 <= handle["y"] < 1600 and 0 <= box["y"] + 12 < 1600, (handle, box)
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 12, steps=25)
    page.wait_for_timeout(150)
    page.mouse.up()
    page.wait_for_timeout(250)


def test_straight_drags_land_in_the_slot_aimed_at(page, live_server):
    page.set_viewport_size({"width": 1280, "height": 1600})
    texts = [f"drag output {i}\n" + "a line of text\n" * 6 for i in range(5)]
    with _the_only_open_task(live_server, "drag-labeler", texts):
        login(page, "drag-labeler", PASSWORD)
        page.wait_for_selector("#task:not([hidden]) #pool .output")
    page.wait_for_selector("#task:not([hidden]) #pool .output")
    ids = page.locator("#pool .output").evaluate_all("els => els.map(e => e.dataset.id)")
    slots = page.locator("#slots .slot")
    card = lambda cid: page.locator(f'#task .output[data-id="{cid}"]')  # noqa: E731
    where = lambda cid: card(cid).evaluate("el => el.parentElement.dataset.slot")  # noqa: E731
    page.keyboard.press("1")  # ids[0] -> rank 1 (the keyboard moves on to ids[1])
    page.keyboard.press("2")  # ids[1] -> rank 2
    _straight_drag(page, card(ids[2]), slots.nth(3))
    assert where(ids[2]) == "3", "a straight drag to rank 4 must land in rank 4"
    _straight_drag(page, card(ids[3]), slots.nth(2))
    assert where(ids[3]) == "2"
    _straight_drag(page, card(ids[4]), slots.nth(4))
    assert where(ids[4]) == "4"
    assert [where(c) for c in ids] == ["0", "1", "3", "2", "4"]  # no accidental tie anywhere


def test_after_the_session_ends_a_login_link_brings_the_ranking_back(page, live_server):
    with _the_only_open_task(live_server, "relogin-labeler", [f"relogin {i}" for i in range(4)]):
        login(page, "relogin-labeler", PASSWORD)
        page.wait_for_selector("#task:not([hidden]) #pool .output")
    page.wait_for_selector("#task:not([hidden]) #pool .output")
    ids = page.locator("#pool .output").evaluate_all("els => els.map(e => e.dataset.id)")
    for key in ("2", "1", "4", "3"):
        page.keyboard.press(key)
    page.fill("#note", "written before the session ended")
    page.context.clear_cookies()  # the session is gone (expired, or logged out elsewhere)
    page.click("#submit-button")
    page.wait_for_selector("#login-again")
    page.click("#login-again")
    page.fill("input[name=username]", "relogin-labeler")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/label")
    page.wait_for_selector("#task:not([hidden]) .output")
    assert page.input_value("#note") == "written before the session ended"
    page.click("#submit-button")
    page.wait_for_function("document.getElementById('today-count').textContent === '1'")
    with live_server.session() as s:
        ranking = s.scalars(select(Ranking).where(Ranking.note == "written before the session ended")).one()
        assert ranking.buckets == [[int(ids[1])], [int(ids[0])], [int(ids[3])], [int(ids[2])]]
