"""Issue 15: a task promoted to gold leads to its gold answer: researchers are served it and can rank it at once."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import Ranking, RankingTask, Role, TaskKind, TaskStatus, UserStatus
from app.services import users as user_service
from app.services.prompts import get_or_create_prompt
from app.services.tasks import NewCompletion, create_task
from tests.browser.conftest import login

pytestmark = pytest.mark.browser
PASSWORD = "browser-pass-123"


def test_a_promoted_task_is_served_to_researchers_and_ranked_from_its_page(browser, page, live_server):
    with live_server.session() as s:
        for name in ("gold-researcher", "gold-colleague"):
            user_service.create_user(
                s, username=name, password=PASSWORD, role=Role.researcher, status=UserStatus.active
            )
        prompt, _ = get_or_create_prompt(s, text="gold-researcher: a task labelers disagreed on")
        task = create_task(s, prompt=prompt, completions=[NewCompletion(text=f"gold out {i}") for i in range(4)])
        task.status = TaskStatus.complete  # its one labeler ranked it
        task_id = task.id
    login(page, "gold-researcher", PASSWORD)
    page.goto(f"/tasks/{task_id}")
    page.click("#promote-gold")
    page.wait_for_selector("#rank-gold")
    with live_server.session() as s:
        promoted = s.get(RankingTask, task_id)
        assert promoted.kind == TaskKind.gold and promoted.status == TaskStatus.open

    # another researcher finds it in their queue on the ranking page
    other = browser.new_context(base_url=live_server.base_url, bypass_csp=True)
    try:
        colleague = other.new_page()
        login(colleague, "gold-colleague", PASSWORD)
        colleague.goto("/label")
        colleague.wait_for_selector("#task:not([hidden]) #pool .output")
        assert "a task labelers disagreed on" in colleague.locator("#prompt-text").inner_text()
    finally:
        other.close()

    # the promoting researcher ranks it straight from the task page
    page.click("#rank-gold")
    page.wait_for_url("**/label")
    page.wait_for_selector("#task:not([hidden]) #pool .output")
    assert "a task labelers disagreed on" in page.locator("#prompt-text").inner_text()
    for key in ("1", "2", "3", "4", "Enter"):
        page.keyboard.press(key)
    page.wait_for_function("document.getElementById('today-count').textContent === '1'")
    with live_server.session() as s:
        gold = s.scalars(select(Ranking).where(Ranking.task_id == task_id)).one()
        assert gold.by_researcher
        s.get(RankingTask, task_id).status = TaskStatus.archived  # out of other tests' researcher queues
    page.goto(f"/tasks/{task_id}")
    assert page.locator("#rank-gold").count() == 0  # answered
