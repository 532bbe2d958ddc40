"""Issue 15: markdown and code in prompts and outputs render safely, with a toggle back to the raw text."""

from __future__ import annotations

import pytest

from app.models import Role, UserStatus
from app.services import users as user_service
from app.services.prompts import get_or_create_prompt
from app.services.tasks import NewCompletion, create_task
from tests.browser.conftest import login

pytestmark = pytest.mark.browser
PASSWORD = "browser-pass-123"
PROMPT = "md-labeler: write **one** function\n\n| lang | year |\n|---|---|\n| C | 1972 |"
CODE = "Here it is:\n\n```python\ndef " + "very_long_name_" * 12 + "():\n    return 1\n```\n\nDone."
HOSTILE = 'Look: <img src=x onerror="window.__pwned=1"> <b>raw bold</b> [link](javascript:alert(1))'


def test_markdown_renders_sanitised_and_raw_text_is_one_click_away(page, live_server):
    with live_server.session() as s:
        user_service.create_user(
            s, username="md-labeler", password=PASSWORD, role=Role.labeler, status=UserStatus.active
        )
        prompt, _ = get_or_create_prompt(s, text=PROMPT)
        texts = [CODE, HOSTILE, "* a\n* b", "plain line one\nplain line two"]
        create_task(s, prompt=prompt, completions=[NewCompletion(text=t) for t in texts], priority=200)
    login(page, "md-labeler", PASSWORD)
    page.goto("/label")
    page.wait_for_selector("#task:not([hidden]) #pool .output")
    assert page.locator("#prompt-text strong").inner_text() == "one"
    assert page.locator("#prompt-text table td").first.inner_text() == "C"
    code_card = page.locator("#pool .output", has_text="very_long_name_")
    block = code_card.locator("pre code")
    assert "monospace" in block.evaluate("el => getComputedStyle(el).fontFamily")
    pre = code_card.locator("pre")
    assert pre.evaluate("el => getComputedStyle(el).overflowX") == "auto"
    assert pre.evaluate("el => el.scrollWidth > el.clientWidth")  # a long line scrolls inside its block
    card_box, pre_box = code_card.bounding_box(), pre.bounding_box()
    assert pre_box["x"] + pre_box["width"] <= card_box["x"] + card_box["width"] + 1
    # single newlines in model output stay line breaks
    assert page.locator("#pool .output", has_text="plain line one").locator("br").count() == 1
    # raw HTML stays text: no element made from it, nothing runs, no javascript: link
    hostile = page.locator("#pool .output", has_text="Look:")
    assert hostile.locator("img, b").count() == 0
    assert "<b>raw bold</b>" in hostile.locator(".output-text").inner_text()
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#task a[href^='javascript']").count() == 0

    page.click("#raw-button")
    assert page.locator("#raw-button").get_attribute("aria-pressed") == "true"
    assert page.locator("#prompt-text strong").count() == 0
    assert "**one**" in page.locator("#prompt-text").inner_text()
    assert "```python" in code_card.locator(".output-text").inner_text()
    page.reload()  # the choice is kept
    page.wait_for_selector("#task:not([hidden]) #pool .output")
    assert "**one**" in page.locator("#prompt-text").inner_text()
    page.click("#raw-button")
    assert page.locator("#prompt-text strong").count() == 1
