"""Issue 18 in the browser: a labeler ranks the outputs of a three-turn conversation, and writes demonstrations (from
scratch with the markdown preview, and starting from a sampled output)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import Completion, Demonstration, DemonstrationOrigin, Ranking, Role, UserStatus
from app.services import demonstrations as demo_service
from app.services import users as user_service
from app.services.prompts import get_or_create_prompt
from app.services.tasks import NewCompletion, create_task
from tests.browser.a11y import violations
from tests.browser.conftest import login, only_new_tasks

pytestmark = pytest.mark.browser
PASSWORD = "browser-pass-123"


def _labeler(live_server, username: str) -> int:
    with live_server.session() as s:
        user = user_service.create_user(
            s, username=username, password=PASSWORD, role=Role.labeler, status=UserStatus.active
        )
        return user.id


def test_labeler_ranks_a_three_turn_conversation(page, live_server):
    user_id = _labeler(live_server, "conv-ranker")
    messages = [
        {"role": "user", "content": "conv-ranker: what is a **prime** number?"},
        {"role": "assistant", "content": "A number with exactly two divisors." + "\n\nMore." * 40},
        {"role": "user", "content": "Give an example, please."},
    ]
    with only_new_tasks(live_server):
        with live_server.session() as s:
            prompt, _ = get_or_create_prompt(s, messages=messages)
            outputs = [NewCompletion(text=f"conv-ranker example {n}") for n in (2, 3, 5, 7)]
            task_id = create_task(s, prompt=prompt, completions=outputs).id
        login(page, "conv-ranker", PASSWORD)
        page.goto("/label")
        page.wait_for_selector("#task:not([hidden]) #pool .output")
        turns = page.locator("#prompt-text .turn")
        assert turns.count() == 3
        assert turns.evaluate_all("ts => ts.map(t => t.querySelector('.turn-role').textContent)") == [
            "User",
            "Assistant",
            "User",
        ]
        # every turn is markdown: the first turn's **prime** is bold, and markup is never raw
        assert page.locator("#prompt-text .turn").first.locator("strong").inner_text() == "prime"
        # the turns before the last two fold into a disclosure, open while short; closing it hides them
        earlier = page.locator("#prompt-text details.turns-earlier")
        assert earlier.locator(".turn").count() == 1 and earlier.evaluate("d => d.open")
        assert page.locator("#prompt-text > .turn").count() == 2
        assert page.locator("#conversation-help").is_visible()  # says the outputs are the next assistant turn
        # a long turn scrolls inside its box, which can then take the focus (scrolled from the keyboard)
        page.wait_for_function("document.querySelectorAll('#prompt-text .turn-text')[1].tabIndex === 0")
        assert violations(page) == []
        earlier.locator("summary").click()
        assert not earlier.evaluate("d => d.open")
        assert not earlier.locator(".turn").is_visible()
        assert page.locator("#prompt-text > .turn").last.inner_text().endswith("Give an example, please.")
        # the outputs are the candidate next assistant turn: rank them with the keyboard and submit
        page.locator("#pool .output").first.focus()
        for key in "1234":
            page.keyboard.press(key)
        assert page.locator("#pool .output").count() == 0
        page.keyboard.press("Enter")
        page.wait_for_selector("#status:has-text('Saved.')")
    with live_server.session() as s:
        ranking = s.scalars(select(Ranking).where(Ranking.labeler_id == user_id)).one()
        assert ranking.task_id == task_id and len(ranking.buckets) == 4


def test_plain_prompt_looks_as_before(page, live_server):
    _labeler(live_server, "conv-plain")
    with only_new_tasks(live_server):
        with live_server.session() as s:
            prompt, _ = get_or_create_prompt(s, text="conv-plain: explain *tides*")
            create_task(s, prompt=prompt, completions=[NewCompletion(text=f"plain {i}") for i in range(4)])
        login(page, "conv-plain", PASSWORD)
        page.goto("/label")
        page.wait_for_selector("#task:not([hidden]) #pool .output")
        assert page.locator("#prompt-text .turn").count() == 0
        assert page.locator("#conversation-help").is_hidden()
        assert page.locator("#prompt-text.markdown em").inner_text() == "tides"


def test_labeler_writes_demonstrations(page, live_server):
    user_id = _labeler(live_server, "demo-writer")
    with only_new_tasks(live_server):
        with live_server.session() as s:
            first, _ = get_or_create_prompt(
                s,
                messages=[
                    {"role": "system", "content": "Answer briefly."},
                    {"role": "user", "content": "demo-writer: name a planet"},
                ],
            )
            second, _ = get_or_create_prompt(s, text="demo-writer: describe the sea")
            sampled = create_task(
                s, prompt=second, completions=[NewCompletion(text=f"The sea is wide {i}.") for i in range(4)]
            )
            sampled.status = "archived"  # its outputs stay the prompt's sampled outputs, offered to rewrite
            demo_service.create_demonstration_tasks(s, prompt_ids=[first.id], created_by=None, priority=20)
            demo_service.create_demonstration_tasks(
                s, prompt_ids=[second.id], created_by=None, starting_points=2, priority=10
            )
        login(page, "demo-writer", PASSWORD)
        page.goto("/label")
        page.wait_for_selector("#demo-task:not([hidden])")
        assert page.locator("#task").is_hidden()
        roles = page.locator("#demo-conversation .turn-role").all_inner_texts()
        assert roles == ["System", "User"]
        assert page.locator("#demo-sources").is_hidden()  # nothing sampled to start from
        page.fill("#demo-text", "# Mars\n\nThe **red** planet.")
        assert page.locator("#demo-preview h1").inner_text() == "Mars"
        assert page.locator("#demo-preview strong").inner_text() == "red"
        # the draft survives a reload
        page.reload()
        page.wait_for_selector("#demo-task:not([hidden])")
        assert page.locator("#demo-text").input_value() == "# Mars\n\nThe **red** planet."
        assert page.locator("#demo-preview strong").inner_text() == "red"
        page.click("#demo-submit")
        # the next task loads: it offers the sampled outputs to start from
        page.wait_for_selector("#demo-sources:not([hidden])")
        page.wait_for_selector("#status:has-text('Demonstration saved.')")
        assert "demo-writer: describe the sea" in page.locator("#demo-conversation").inner_text()
        assert violations(page) == []  # the editor, its preview and the outputs to start from
        page.get_by_label("Start from output B").check()
        chosen = page.locator("#demo-text").input_value()
        assert chosen.startswith("The sea is wide")
        page.fill("#demo-text", chosen + " And *deep*.")
        assert page.locator("#demo-preview em").inner_text() == "deep"
        page.press("#demo-text", "Control+Enter")  # submits from the editor
        page.wait_for_selector("#status:has-text('Demonstration saved.')")
        page.wait_for_selector("#empty:not([hidden])")
        page.wait_for_selector("#demo-history:not([hidden]) #demo-history-list li >> nth=1", state="attached")
        page.click("#demo-history summary")
        # correct the newest one within the window: its conversation and text come back, the source is kept
        page.locator("#demo-history-list li").first.locator(".revise-demo").click()
        page.wait_for_selector("#demo-task:not([hidden])")
        assert "demo-writer: describe the sea" in page.locator("#demo-conversation").inner_text()
        assert page.locator("#demo-text").input_value() == chosen + " And *deep*."
        corrected = chosen + " And *deep*. Corrected."
        page.fill("#demo-text", corrected)
        page.click("#demo-submit")
        page.wait_for_selector("#status:has-text('Correction saved.')")
    with live_server.session() as s:
        demos = s.scalars(select(Demonstration).where(Demonstration.labeler_id == user_id).order_by(Demonstration.id))
        written, rewritten = demos.all()
        assert written.content == "# Mars\n\nThe **red** planet." and written.origin == DemonstrationOrigin.written
        assert written.source_completion_id is None
        assert rewritten.origin == DemonstrationOrigin.rewritten
        assert rewritten.content == corrected
        source = s.get(Completion, rewritten.source_completion_id)
        assert source is not None and source.text == chosen


def test_labeler_skips_a_demonstration_with_a_reason(page, live_server):
    from app.models import Assignment, AssignmentStatus

    user_id = _labeler(live_server, "demo-skipper")
    with only_new_tasks(live_server):
        with live_server.session() as s:
            prompt, _ = get_or_create_prompt(s, text="demo-skipper: write a sonnet")
            [task] = demo_service.create_demonstration_tasks(s, prompt_ids=[prompt.id], created_by=None)
            task_id = task.id
        login(page, "demo-skipper", PASSWORD)
        page.goto("/label")
        page.wait_for_selector("#demo-task:not([hidden])")
        page.fill("#demo-text", "Shall I compare")
        page.click("#skip-button")
        page.get_by_label("I cannot judge this subject").check()
        page.click("#skip-confirm")
        page.wait_for_selector("#status:has-text('Skipped.')")
        page.wait_for_selector("#empty:not([hidden])")
        assert page.locator("#demo-task").is_hidden()
        assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('ranklab-draft-'))") == []
    with live_server.session() as s:
        assignment = s.scalars(select(Assignment).where(Assignment.labeler_id == user_id)).one()
        assert assignment.task_id == task_id and assignment.status == AssignmentStatus.skipped
        assert assignment.skip_reason == "I cannot judge this subject"
