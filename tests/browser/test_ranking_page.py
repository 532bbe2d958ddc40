"""A new labeler ranks one task with the mouse (with a tie) and one with the keyboard only, then reads it back."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import select

from app.models import Assignment, AssignmentStatus, Ranking, RankingTask, Role, TaskStatus, User, UserStatus
from app.services import guidelines as guideline_service
from app.services import users as user_service
from app.services.prompts import get_or_create_prompt
from app.services.tasks import NewCompletion, create_task
from tests.browser.conftest import login

pytestmark = pytest.mark.browser
PASSWORD = "browser-pass-123"
XSS = "<script>window.__pwned = 1</script><b>bold?</b>"


def _seed(live_server, username: str) -> int:
    with live_server.session() as s:
        user = user_service.create_user(
            s, username=username, password=PASSWORD, role=Role.labeler, status=UserStatus.active
        )
        for n, priority in ((1, 30), (2, 20), (3, 10)):
            prompt, _ = get_or_create_prompt(s, text=f"{username} prompt {n}: explain tides")
            texts = [f"{username} task {n} output {i}" for i in range(4)]
            if n == 1:
                texts[2] = XSS + " long " * 400
            create_task(s, prompt=prompt, completions=[NewCompletion(text=t) for t in texts], priority=priority)
        return user.id


def _drag_once(page, card, target) -> None:
    page.wait_for_timeout(300)  # let SortableJS's 120 ms move animation settle before measuring
    handle = card.locator(".drag-handle").bounding_box()
    box = target.bounding_box()
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    page.mouse.move(handle["x"] + 20, handle["y"] + 20, steps=5)
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] - 8, steps=15)
    page.mouse.up()


def _drag(page, card, target) -> None:
    """Drag by the handle into a slot; a loaded CI machine may drop a frame, so check and retry."""
    slot = target.get_attribute("data-slot")
    for _ in range(3):
        _drag_once(page, card, target)
        if card.evaluate("el => el.parentElement.dataset.slot") == slot:
            return
    raise AssertionError(f"could not drag the output into slot {slot}")


def _card(page, cid: int):
    return page.locator(f'#task .output[data-id="{cid}"]')


def _pool_ids(page) -> list[int]:
    return [int(x) for x in page.locator("#pool .output").evaluate_all("els => els.map(e => e.dataset.id)")]


def test_new_labeler_ranks_with_mouse_and_keyboard(page, live_server):
    user_id = _seed(live_server, "newbie")
    login(page, "newbie", PASSWORD)
    page.goto("/label")
    page.wait_for_selector("#task:not([hidden]) #pool .output")
    assert page.locator("#today-count").inner_text() == "0"
    assert "newbie prompt 1" in page.locator("#prompt-text").inner_text()
    # a completion holding markup shows as text and never runs
    assert page.locator("#pool").get_by_text("<script>window.__pwned = 1</script>", exact=False).count() == 1
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#task b").count() == 0
    # a long output scrolls inside its card until expanded, so every output stays in view
    long_card = page.locator("#pool .output", has_text="long  long")
    height = "el => el.querySelector('.output-text').clientHeight"
    scrolls = "el => el.querySelector('.output-text').scrollHeight > el.querySelector('.output-text').clientHeight"
    assert long_card.evaluate(scrolls)
    folded = long_card.evaluate(height)
    long_card.locator("button.expand").click()
    assert long_card.evaluate(height) > folded
    long_card.locator("button.expand").click()

    # --- task 1 with the mouse: a, then b and c tied, then d
    a, b, c, d = _pool_ids(page)
    slots = page.locator("#slots .slot")
    _drag(page, _card(page, a), slots.nth(0))
    _drag(page, _card(page, b), slots.nth(1))
    _drag(page, _card(page, c), slots.nth(1))  # dropping into a filled slot = tie
    _drag(page, _card(page, d), slots.nth(2))
    assert page.locator("#pool .output").count() == 0
    for cid, rating in ((a, 6), (b, 4), (c, 4), (d, 2)):
        _card(page, cid).locator(f'input[type=radio][value="{rating}"]').check()
    _card(page, c).locator(".flag-box summary").click()
    _card(page, c).locator('input[data-flag="hallucination"]').check()
    page.fill("#note", "b and c are equally good")
    first_prompt = page.locator("#prompt-text").inner_text()
    page.click("#submit-button")
    page.wait_for_function("document.getElementById('today-count').textContent === '1'")
    page.wait_for_function("!document.getElementById('prompt-text').textContent.includes('prompt 1')")
    assert page.locator("#prompt-text").inner_text() != first_prompt

    # --- task 2 with the keyboard only: rate, flag, rank; tie with "t"; Enter submits
    e, f, g, h = _pool_ids(page)
    assert page.evaluate("document.activeElement.dataset.id") == str(e)
    page.keyboard.press("Shift+Digit5")
    page.keyboard.press("a")  # harmful_advice
    page.keyboard.press("2")
    page.keyboard.press("Shift+Digit7")
    page.keyboard.press("1")
    page.keyboard.press("Shift+Digit6")
    page.keyboard.press("t")  # tie with f (rank 1)
    page.keyboard.press("Shift+Digit1")
    page.keyboard.press("3")
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('today-count').textContent === '2'")
    page.wait_for_function("document.getElementById('prompt-text').textContent.includes('prompt 3')")

    with live_server.session() as s:
        rankings = s.scalars(select(Ranking).where(Ranking.labeler_id == user_id).order_by(Ranking.id)).all()
        assert len(rankings) == 2
        mouse, keys = rankings
        assert mouse.buckets == [[a], [b, c], [d]] and not mouse.not_rankable
        assert mouse.note == "b and c are equally good"
        items = {i.completion_id: (i.rank, i.rating, i.flags) for i in mouse.items}
        assert items == {a: (0, 6, []), b: (1, 4, []), c: (1, 4, ["hallucination"]), d: (2, 2, [])}
        assert keys.buckets == [[f, g], [e], [h]] and keys.note == ""
        items = {i.completion_id: (i.rank, i.rating, i.flags) for i in keys.items}
        assert items == {e: (1, 5, ["harmful_advice"]), f: (0, 7, []), g: (0, 6, []), h: (2, 1, [])}
        assert all(r.time_spent_ms is not None and r.time_spent_ms > 0 for r in rankings)


def test_keyboard_moves_marks_all_bad_and_skips_with_a_reason(page, live_server):
    """j/k move between outputs, n marks the task not rankable (all bad), the skip dialog hands a task back."""
    user_id = _seed(live_server, "keys-labeler")
    with live_server.session() as s:
        guideline_service.publish_guideline(s, body="# Be kind\nRank by helpfulness.", author=s.get(User, user_id))
    login(page, "keys-labeler", PASSWORD)
    page.goto("/label")
    page.wait_for_selector("#task:not([hidden]) #pool .output")
    assert page.locator("#guidelines-link").get_attribute("href") == "/guidelines"
    e, f, g, _h = _pool_ids(page)
    focused = "document.activeElement.dataset.id"
    assert page.evaluate(focused) == str(e)
    page.keyboard.press("j")
    page.keyboard.press("ArrowDown")
    assert page.evaluate(focused) == str(g)
    page.keyboard.press("k")
    assert page.evaluate(focused) == str(f)
    page.keyboard.press("n")
    assert page.locator("#not-rankable").is_checked()
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('today-count').textContent === '1'")

    page.wait_for_function("document.getElementById('prompt-text').textContent.includes('prompt 2')")
    assert not page.locator("#not-rankable").is_checked()  # the next task starts clean
    page.click("#skip-button")
    page.fill("#skip-reason", "I cannot judge tides")
    page.click("#skip-confirm")
    page.wait_for_function("document.getElementById('prompt-text').textContent.includes('prompt 3')")

    with live_server.session() as s:
        ranking = s.scalars(select(Ranking).where(Ranking.labeler_id == user_id)).one()
        assert ranking.not_rankable and ranking.buckets == []
        skipped = s.scalars(
            select(Assignment).where(Assignment.labeler_id == user_id, Assignment.status == AssignmentStatus.skipped)
        ).one()
        assert skipped.skip_reason == "I cannot judge tides"


@contextmanager
def _phone_labeling(browser, live_server, username: str):  # type: ignore[no-untyped-def]
    """(context, page) of a phone-sized touch screen, logged in and showing the first task."""
    context = browser.new_context(
        base_url=live_server.base_url,
        viewport={"width": 390, "height": 844},
        has_touch=True,
        is_mobile=True,
        bypass_csp=True,  # wait_for_function evaluates strings (see conftest)
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        login(page, username, PASSWORD)
        page.goto("/label")
        page.wait_for_selector("#task:not([hidden]) #pool .output")
        yield context, page
    finally:
        context.close()


def test_phone_labeler_ranks_with_rank_pickers(browser, live_server):
    """On a phone-sized touch screen the per-output rank picker ranks without dragging."""
    user_id = _seed(live_server, "phone-labeler")
    with _phone_labeling(browser, live_server, "phone-labeler") as (_context, page):
        a, b, c, d = _pool_ids(page)
        for cid, rank in ((a, "2"), (b, "1"), (c, "2"), (d, "3")):
            _card(page, cid).locator(".rank-select").select_option(rank)
        assert _card(page, c).locator(".output-rank").inner_text() == "rank 2 (tie)"
        page.locator("#submit-button").tap()
        page.wait_for_function("document.getElementById('today-count').textContent === '1'")
    with live_server.session() as s:
        ranking = s.scalars(select(Ranking).where(Ranking.labeler_id == user_id)).one()
        assert ranking.buckets == [[b], [a, c], [d]]


def _swipe(cdp, x: float, y: float, dy: float, steps: int = 8) -> None:
    """A quick one-finger swipe (no press-and-hold), as when scrolling a phone screen."""
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    for i in range(1, steps + 1):
        point = {"x": x, "y": y + dy * i / steps}
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def test_scrolling_a_phone_screen_never_reorders(browser, live_server):
    """Swipes that start on an output's text, or quickly on its drag handle, leave every output where it was."""
    _seed(live_server, "swipe-labeler")
    with _phone_labeling(browser, live_server, "swipe-labeler") as (context, page):
        before = _pool_ids(page)
        cdp = context.new_cdp_session(page)
        for cid in before[1:3]:
            card = _card(page, cid)
            card.scroll_into_view_if_needed()
            text = card.locator(".output-text").bounding_box()
            handle = card.locator(".drag-handle").bounding_box()
            assert text is not None and handle is not None
            _swipe(cdp, text["x"] + 20, text["y"] + 10, -250)  # swipe up over the text
            _swipe(cdp, handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2, -250)  # over the handle
            page.wait_for_timeout(200)
        assert _pool_ids(page) == before
        assert page.locator("#slots .output").count() == 0
        # control: pressing and holding the handle, then moving, does drag (so the swipes above reached Sortable)
        second = _card(page, before[1])
        # both cards on screen, the first at the top (cards are tall on a phone: whole outputs, 44 px ratings)
        _card(page, before[0]).evaluate("el => el.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(100)
        handle = second.locator(".drag-handle").bounding_box()
        first_box = _card(page, before[0]).bounding_box()
        assert handle is not None and first_box is not None
        x, y = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
        page.wait_for_timeout(400)  # longer than the 150 ms touch delay
        for i in range(1, 11):
            target = {"x": x, "y": y + (first_box["y"] + 5 - y) * i / 10}
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [target]})
            page.wait_for_timeout(30)
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        page.wait_for_timeout(300)
        assert _pool_ids(page)[:2] == [before[1], before[0]]


def test_an_empty_queue_is_checked_again_without_a_click(page, live_server):
    with live_server.session() as s:
        user_service.create_user(
            s, username="waiting-labeler", password=PASSWORD, role=Role.labeler, status=UserStatus.active
        )
    page.add_init_script("window.RANKLAB_RECHECK_MS = 300")
    with live_server.session() as s:  # every open task is spoken for: nothing for this labeler
        busy = list(s.scalars(select(RankingTask).where(RankingTask.status == TaskStatus.open)))
        for task in busy:
            task.status = TaskStatus.complete
    try:
        login(page, "waiting-labeler", PASSWORD)  # lands on /label (a labeler's home), so only now
        page.goto("/label")
        page.wait_for_selector("#empty:not([hidden])")
        with live_server.session() as s:  # a sampling job writes a new task
            prompt, _ = get_or_create_prompt(s, text="waiting-labeler: a fresh prompt")
            create_task(s, prompt=prompt, completions=[NewCompletion(text=f"fresh {i}") for i in range(4)])
        page.wait_for_selector("#task:not([hidden]) #pool .output")
        assert "a fresh prompt" in page.locator("#prompt-text").inner_text()
        assert page.locator("#empty").is_hidden()
    finally:
        with live_server.session() as s:
            for task in busy:
                s.get(RankingTask, task.id).status = TaskStatus.open
