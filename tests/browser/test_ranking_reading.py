"""Issue 15: outputs are readable whole (length shown, long ones scroll in their card), side by side on demand."""

from __future__ import annotations

import pytest

from app.models import Role, UserStatus
from app.services import users as user_service
from app.services.prompts import get_or_create_prompt
from app.services.tasks import NewCompletion, create_task
from tests.browser.conftest import login

pytestmark = pytest.mark.browser
PASSWORD = "browser-pass-123"
TEN_LINES = "\n".join(f"step {i}: stir the pot" for i in range(1, 11))
HUGE = ("word " * 4000).strip()  # 19,999 characters


def _seed(live_server, username: str) -> None:
    with live_server.session() as s:
        user_service.create_user(s, username=username, password=PASSWORD, role=Role.labeler, status=UserStatus.active)
        prompt, _ = get_or_create_prompt(s, text=f"{username}: write a recipe")
        texts = ["One line.", TEN_LINES, HUGE, "Two\nlines."]
        create_task(s, prompt=prompt, completions=[NewCompletion(text=t) for t in texts], priority=100)


def _text_box(card):
    return card.evaluate(
        "el => [el.querySelector('.output-text').scrollHeight, el.querySelector('.output-text').clientHeight]"
    )


@pytest.mark.parametrize("viewport", [(1280, 900), (390, 844)], ids=["desktop", "phone"])
def test_outputs_show_whole_with_their_length(browser, live_server, viewport):
    username = f"reader-{viewport[0]}"
    _seed(live_server, username)
    context = browser.new_context(
        base_url=live_server.base_url, viewport={"width": viewport[0], "height": viewport[1]}, bypass_csp=True
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        login(page, username, PASSWORD)
        page.goto("/label")
        page.wait_for_selector("#task:not([hidden]) #pool .output")
        ten = page.locator("#pool .output", has_text="step 10")
        scroll_h, client_h = _text_box(ten)
        assert scroll_h <= client_h + 1, "a ten-line output is shown whole, not cut"
        assert ten.locator(".output-length").inner_text() == f"10 lines · {len(TEN_LINES)} characters"
        assert ten.locator("button.expand").is_hidden()  # nothing to unfold

        huge = page.locator("#pool .output", has_text="word word")
        assert huge.locator(".output-length").inner_text() == "1 line · 19,999 characters"
        scroll_h, client_h = _text_box(huge)
        assert scroll_h > 3 * client_h and client_h < viewport[1]  # scrolls inside its card, never a page of words
        button = huge.locator("button.expand")
        assert button.is_visible()
        color = button.evaluate("el => getComputedStyle(el).color")
        assert color == "rgb(37, 99, 201)"  # the accent colour, not light grey on white
        button.click()
        assert _text_box(huge)[1] >= scroll_h - 1
        assert button.get_attribute("aria-expanded") == "true"

        # side by side: one column per output, all starting on the same line, each whole and in the shown order
        page.click("#reader-button")
        cols = page.locator("#reader .reader-col")
        assert cols.count() == 4
        tops = {round(b["y"]) for b in (cols.nth(i).bounding_box() for i in range(4))}
        assert len(tops) == 1
        pool_ids = page.locator("#pool .output").evaluate_all("els => els.map(e => e.dataset.id)")
        assert cols.evaluate_all("els => els.map(e => e.dataset.id)") == pool_ids
        assert "step 10" in page.locator("#reader .reader-col", has_text="step 1:").inner_text()
        page.click("#reader-button")
        assert page.locator("#reader").is_hidden()
    finally:
        context.close()


def test_phone_rating_targets_nothing_clipped_and_the_next_task_starts_at_its_prompt(browser, live_server):
    username = "phone-reader"
    _seed(live_server, username)
    with live_server.session() as s:  # a second task to land on after the submit
        prompt, _ = get_or_create_prompt(s, text=f"{username}: the second prompt")
        create_task(s, prompt=prompt, completions=[NewCompletion(text=f"second {i}") for i in range(4)], priority=99)
    context = browser.new_context(
        base_url=live_server.base_url,
        viewport={"width": 390, "height": 844},
        has_touch=True,
        is_mobile=True,
        bypass_csp=True,
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        login(page, username, PASSWORD)
        page.goto("/label")
        page.wait_for_selector("#task:not([hidden]) #pool .output")
        # every rating is a 44 px tap target
        sizes = page.locator("#pool .rating label").evaluate_all(
            "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; })"
        )
        assert len(sizes) == 28 and all(w >= 44 and h >= 44 for w, h in sizes), sizes
        # nothing sticks out of its card: not the show-all button, not rating 7
        clipped = page.locator("#pool .output").evaluate_all(
            """cards => cards.flatMap(card => {
                 const edge = card.getBoundingClientRect();
                 return Array.from(card.querySelectorAll('button, label, select, .output-length'))
                   .filter(e => e.offsetParent !== null)
                   .filter(e => { const r = e.getBoundingClientRect(); return r.right > edge.right + 0.5
                                  || r.left < edge.left - 0.5; })
                   .map(e => e.textContent.trim().slice(0, 20));
               })"""
        )
        assert clipped == []
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        # rank by taps, submit from the bottom of the page: the next task opens at its prompt
        for i, cid in enumerate(page.locator("#pool .output").evaluate_all("els => els.map(e => e.dataset.id)")):
            page.locator(f'#task .output[data-id="{cid}"] .rank-select').select_option(str(i + 1))
        page.locator("#submit-button").tap()
        page.wait_for_function("document.getElementById('prompt-text').textContent.includes('second prompt')")
        page.wait_for_timeout(200)
        box = page.locator("#prompt-text").bounding_box()
        assert box is not None and 0 <= box["y"] < 844 / 2
    finally:
        context.close()
