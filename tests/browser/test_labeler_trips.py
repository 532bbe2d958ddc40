"""Issue 21, labelers: what a walk through the ranking page found (a stranded draft, a warning scrolled away, drags
to the last ranks, stale messages, silent key placement, a bare 403, and smaller things)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.models import Assignment, AssignmentStatus, RankingTask, Role, UserStatus, utcnow
from app.services import users as user_service
from app.services.prompts import get_or_create_prompt
from app.services.tasks import NewCompletion, create_task
from tests.browser.a11y import violations
from tests.browser.conftest import login

pytestmark = pytest.mark.browser
PASSWORD = "browser-pass-123"
PLACED = "els => els.map(s => Array.from(s.querySelectorAll('.output'), o => Number(o.dataset.id)))"


def _labeler_with_tasks(live_server, name: str, n_tasks: int = 2, k: int = 4, text: str = "") -> int:
    with live_server.session() as s:
        user = user_service.create_user(
            s, username=name, password=PASSWORD, role=Role.labeler, status=UserStatus.active
        )
        for n in range(n_tasks):
            prompt, _ = get_or_create_prompt(s, text=f"{name}: prompt {n}")
            outputs = [NewCompletion(text=text or f"{name} {n}.{i}") for i in range(k)]
            if text:
                outputs = [NewCompletion(text=f"{text}\n\n{name} {n}.{i}") for i in range(k)]
            create_task(s, prompt=prompt, completions=outputs)
        return user.id


def _lapse(live_server, user_id: int, *, taken_by_another: bool = False) -> int:
    """The labeler's lease ran out and a sweep gave its slot back (as RANKLAB_LEASE_MINUTES=1 would, a minute on);
    with `taken_by_another`, another labeler took the free slot meanwhile."""
    with live_server.session() as s:
        row = s.scalars(select(Assignment).where(Assignment.labeler_id == user_id)).one()
        row.status, row.expires_at = AssignmentStatus.expired, utcnow() - timedelta(seconds=5)
        s.get(RankingTask, row.task_id).slots_taken = 1 if taken_by_another else 0
        return row.task_id


def _open_task(page) -> list[int]:
    page.wait_for_selector("#task:not([hidden]) #pool .output")
    return [int(x) for x in page.locator("#pool .output").evaluate_all("els => els.map(e => e.dataset.id)")]


# 1 ---------------------------------------------------------------------------------------------------------------
def test_a_lapsed_task_comes_back_with_its_draft_after_a_reload(page, live_server):
    user_id = _labeler_with_tasks(live_server, "lapse-back")
    login(page, "lapse-back", PASSWORD)
    a, b, *_ = _open_task(page)
    prompt = page.locator("#prompt-text").inner_text()
    page.keyboard.press("1")
    page.keyboard.press("2")
    page.fill("#note", "the second is shorter")
    task_id = _lapse(live_server, user_id)
    page.reload()
    _open_task(page)
    assert page.locator("#prompt-text").inner_text() == prompt  # the same task, not a new one
    assert page.locator("#slots .slot").evaluate_all(PLACED)[:2] == [[a], [b]]
    assert page.input_value("#note") == "the second is shorter"
    assert "Your unsent ranking of this task is back." in page.locator("#status").inner_text()
    with live_server.session() as s:
        row = s.scalars(select(Assignment).where(Assignment.labeler_id == user_id)).one()
        assert row.status == AssignmentStatus.active and row.expires_at > utcnow()
        assert s.get(RankingTask, task_id).slots_taken == 1


def test_a_draft_of_a_task_another_labeler_took_is_said_to_be_dropped(page, live_server):
    user_id = _labeler_with_tasks(live_server, "lapse-gone")
    login(page, "lapse-gone", PASSWORD)
    _open_task(page)
    prompt = page.locator("#prompt-text").inner_text()
    page.keyboard.press("1")
    page.fill("#note", "lost when the task went elsewhere")
    _lapse(live_server, user_id, taken_by_another=True)
    page.reload()
    _open_task(page)
    assert page.locator("#prompt-text").inner_text() != prompt
    status = page.locator("#status").inner_text()
    assert "unsent ranking of an earlier task was dropped" in status and "another labeler" in status
    assert page.input_value("#note") == ""
    drafts = page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('ranklab-draft-'))")
    assert drafts == []  # said once: the stranded draft is gone, so a later task does not say it again


# 2 ---------------------------------------------------------------------------------------------------------------
def test_the_lease_warning_stays_in_view_and_reading_keeps_the_lease(page, live_server):
    user_id = _labeler_with_tasks(live_server, "lease-read", n_tasks=1, k=9, text="A long answer.\n\n" * 30)
    page.add_init_script("window.RANKLAB_RENEW_MS = 300")
    login(page, "lease-read", PASSWORD)
    _open_task(page)
    with live_server.session() as s:
        s.scalars(select(Assignment).where(Assignment.labeler_id == user_id)).one().expires_at = utcnow() + timedelta(
            seconds=100
        )
    page.reload()
    _open_task(page)
    page.wait_for_selector("#lease-alert:not([hidden])")
    page.mouse.move(600, 500)
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")  # reading far down a K=9 task
    assert page.evaluate("window.scrollY") > 400
    box = page.locator("#lease-alert").bounding_box()
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 900  # still on screen
    assert page.locator("#lease").bounding_box()["y"] + 40 < 0  # the bar's own countdown has scrolled away
    assert "Lease ends in" in page.locator("#lease-alert").inner_text()
    # scrolling, no key and no click, counts as use: the lease is renewed for a full term and the warning goes
    for _ in range(3):
        page.mouse.wheel(0, -400)
        page.wait_for_timeout(150)
    page.wait_for_selector("#lease-alert", state="hidden")
    with live_server.session() as s:
        row = s.scalars(select(Assignment).where(Assignment.labeler_id == user_id)).one()
        assert row.expires_at > utcnow() + timedelta(minutes=25)


# 3 ---------------------------------------------------------------------------------------------------------------
def test_a_drag_to_the_last_rank_at_k9_lands_there_and_a_tie_shows_before_release(page, live_server):
    _labeler_with_tasks(live_server, "drag-nine", n_tasks=1, k=9, text="Line of a long answer.\n" * 12)
    page.set_viewport_size({"width": 1366, "height": 900})
    login(page, "drag-nine", PASSWORD)
    ids = _open_task(page)
    for rank in range(1, 9):  # ranks 1-8 filled with the keyboard; the ninth output is left in the pool
        page.keyboard.press(str(rank))
    last = page.locator(f'#pool .output[data-id="{ids[8]}"]')
    handle = last.locator(".drag-handle").bounding_box()
    page.mouse.move(handle["x"] + 5, handle["y"] + 5)
    page.mouse.down()
    page.mouse.move(handle["x"] + 40, handle["y"] + 40, steps=5)
    page.wait_for_selector("#ranker.dragging")
    column = page.locator(".ranking-col").bounding_box()
    slot9 = page.locator('#slots .slot[data-slot="8"]').bounding_box()
    # while dragging, every rank is in view inside the ranking column: rank 9 can be reached without scrolling
    assert column["y"] <= slot9["y"] and slot9["y"] + slot9["height"] <= min(column["y"] + column["height"], 900)
    _hover_slot(page, 7)  # over a filled rank: it says before release that a drop there makes a tie
    assert page.locator("#slots .slot.drop-here").get_attribute("data-slot") == "7"
    assert "drop-tie" in page.locator('#slots .slot[data-slot="7"]').get_attribute("class")
    assert "tie" in page.evaluate(
        "getComputedStyle(document.querySelector('#slots .slot[data-slot=\"7\"]'), '::before').content"
    )
    _hover_slot(page, 8)
    assert "drop-tie" not in page.locator('#slots .slot[data-slot="8"]').get_attribute("class")
    page.mouse.up()
    page.wait_for_selector("#ranker:not(.dragging)")
    assert page.locator("#slots .slot").evaluate_all(PLACED) == [[i] for i in ids]  # rank 9 alone, no tie


def _hover_slot(page, index: int) -> None:
    """Move the dragged output over rank `index + 1`, measuring again as the layout settles (as a hand would)."""
    for _ in range(4):
        box = page.locator(f'#slots .slot[data-slot="{index}"]').bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=6)
        page.wait_for_timeout(150)
        if page.locator(f'#slots .slot.drop-here[data-slot="{index}"]').count():
            return
    raise AssertionError(f"rank {index + 1} never showed as the drop target")


# 4 ---------------------------------------------------------------------------------------------------------------
def test_a_new_task_clears_what_the_last_one_said(page, live_server):
    _labeler_with_tasks(live_server, "stale-msg", n_tasks=3)
    login(page, "stale-msg", PASSWORD)
    _open_task(page)
    page.click("#skip-button")
    page.click("#skip-confirm")  # no reason: refused
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Not skipped')")
    page.click("#skip-button")
    page.get_by_label("I cannot judge this subject").check()
    page.click("#skip-confirm")
    page.wait_for_function("document.getElementById('status').textContent === 'Skipped.'")
    # revising a sent ranking, then saving it: the next task says only what was done
    for key in ("1", "2", "3", "4", "Enter"):
        page.keyboard.press(key)
    page.wait_for_function("document.getElementById('status').textContent === 'Saved. Here is the next one.'")
    page.click("#history summary")
    page.locator("#history-list li button.revise").first.click()
    page.wait_for_selector("#revising:not([hidden])")
    assert "Revising a ranking you submitted" in page.locator("#status").inner_text()
    page.click("#submit-button")
    page.wait_for_selector("#revising", state="hidden")
    page.wait_for_function("document.getElementById('status').textContent === 'Revision saved.'")


# 6 ---------------------------------------------------------------------------------------------------------------
WIDE_CODE = "Run this:\n\n```\n" + "x = compute_everything(" + ", ".join(f"arg{i}" for i in range(60)) + ")\n```\n"


def test_wide_code_can_take_the_focus_and_key_placement_is_announced(page, live_server):
    with live_server.session() as s:
        user_service.create_user(
            s, username="wide-code", password=PASSWORD, role=Role.labeler, status=UserStatus.active
        )
        prompt, _ = get_or_create_prompt(s, text="wide-code: " + WIDE_CODE)
        create_task(s, prompt=prompt, completions=[NewCompletion(text=f"{WIDE_CODE} out {i}") for i in range(4)])
    login(page, "wide-code", PASSWORD)
    _open_task(page)
    page.wait_for_function(
        "[...document.querySelectorAll('.markdown pre')].filter(p => p.offsetParent).every(p => p.tabIndex === 0)"
    )
    found = [v for v in violations(page) if "scrollable-region-focusable" in v]
    assert found == []
    page.locator("#pool .output").first.focus()
    label = page.locator("#pool .output .output-label").first.inner_text()
    page.keyboard.press("2")
    page.wait_for_function(f"document.getElementById('announce').textContent === '{label} → rank 2'")
    assert page.get_attribute("#announce", "aria-live") == "polite"
    # a tie is said as one
    other = page.locator("#pool .output .output-label").first.inner_text()
    page.keyboard.press("2")
    page.wait_for_function(f"document.getElementById('announce').textContent === '{other} → rank 2, tied with {label}'")


# 7 ---------------------------------------------------------------------------------------------------------------
def test_a_labeler_under_review_gets_a_page_with_the_menu_and_a_way_out(page, live_server):
    with live_server.session() as s:
        user_service.create_user(
            s, username="under-review", password=PASSWORD, role=Role.labeler, status=UserStatus.pending_review
        )
    login(page, "under-review", PASSWORD)
    response = page.goto("/label")
    assert response is not None and response.status == 200
    assert page.locator("h1").inner_text() == "Your screening is under review"
    assert page.locator("header nav a", has_text="Guidelines").count() == 1  # the menu is there
    assert page.locator("form.logout button", has_text="Log out").is_visible()
    assert page.locator("#task, #skip-button, #raw-button").count() == 0  # no tools without a task
    page.goto("/prompts")  # a page they may not see: the error page keeps the menu and the log-out link
    assert page.locator("form.logout button", has_text="Log out").is_visible()
    page.click("form.logout button")
    page.wait_for_url("**/login")


# 8 ---------------------------------------------------------------------------------------------------------------
def test_folded_ranked_outputs_end_on_a_whole_line(page, live_server):
    _labeler_with_tasks(live_server, "fold-lines", n_tasks=1, text="A paragraph of text.\n\nAnother one here.\n\n" * 4)
    login(page, "fold-lines", PASSWORD)
    _open_task(page)
    page.keyboard.press("1")
    straddling = page.evaluate(
        """() => {
        const box = document.querySelector('#slots .output .output-text');
        const bottom = box.getBoundingClientRect().bottom;
        const range = document.createRange();
        range.selectNodeContents(box);
        return [...range.getClientRects()].filter(r => r.height > 0 && r.top < bottom - 1 && r.bottom > bottom + 1)
          .length;
        }"""
    )
    assert straddling == 0
    assert page.locator("#slots .output button.expand").is_visible()  # the rest is one click away


def test_a_wrong_password_keeps_the_username(page, live_server):
    page.goto("/login")
    page.fill("input[name=username]", "someone-typed-this")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    page.wait_for_selector(".error[role=alert]")
    assert page.input_value("input[name=username]") == "someone-typed-this"
    assert page.evaluate("document.activeElement.name") == "password"


def test_the_help_says_how_to_select_and_a_phone_hint_names_the_picker(page, live_server):
    _labeler_with_tasks(live_server, "help-text", n_tasks=1)
    login(page, "help-text", PASSWORD)
    _open_task(page)
    keys = page.locator("details.keys li").first.inner_text()
    assert "j" in keys and "Tab: select" not in keys.replace("\n", " ")
    assert "drag" in page.locator(".board h3").first.inner_text()
    page.set_viewport_size({"width": 390, "height": 844})
    hint = page.locator(".board h3").first.inner_text()
    assert "rank…" in hint and "drag" not in hint and "press" not in hint


def test_the_site_has_a_favicon(page, live_server):
    icon = page.request.get("/favicon.ico")
    assert icon.status == 200 and icon.headers["content-type"] == "image/x-icon"
    page.goto("/login")
    linked = page.get_attribute("link[rel=icon]", "href")
    assert linked and page.request.get(linked).status == 200


def test_the_demo_ships_guidelines_that_screening_points_to(page, live_server):
    from app.models import Guideline, User
    from app.services import demo as demo_service

    with live_server.session() as s:  # the demo's first run on an install without guidelines
        for guideline in s.scalars(select(Guideline)):
            s.delete(guideline)
        accounts = demo_service.create_demo_accounts(s)
        s.scalars(select(User).where(User.username == "demo-labeler1")).one().status = UserStatus.screening
    password = next(a.password for a in accounts if a.username == "demo-labeler1")
    login(page, "demo-labeler1", password)
    page.goto("/label")
    page.goto(page.locator("#screening a", has_text="guidelines").get_attribute("href"))
    assert "Ties" in page.locator("main").inner_text() and "best first" in page.locator("main").inner_text()
