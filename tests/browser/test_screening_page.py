"""Issue 15: screening says where a new labeler stands (n of N, why), says a pass out loud, and explains a fail."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import RankingTask, Role, TaskKind, TaskStatus, User, UserStatus
from app.services import screening as screening_service
from app.services import users as user_service
from app.services.tasks import ExternalTask
from tests.browser.a11y import assert_accessible
from tests.browser.conftest import login

pytestmark = pytest.mark.browser
PASSWORD = "browser-pass-123"
ORDER = ("best", "good", "poor", "worst")


@pytest.fixture
def screening_set(live_server, monkeypatch, request):
    """Two screening tasks with a researcher's gold answer (A > B > C > D by text); a set of two decides."""
    monkeypatch.setattr(live_server.settings, "screening_set_size", 2)
    with live_server.session() as s:
        researcher = user_service.create_user(
            s,
            username=f"researcher-{request.node.name[-24:]}",
            password=PASSWORD,
            role=Role.researcher,
            status=UserStatus.active,
        )
        ids = []
        for n in (1, 2):
            spec = ExternalTask(
                prompt=f"screening prompt {n}", completions=[f"s{n} {w}" for w in ORDER], kind=TaskKind.screening
            )
            task = screening_service.create_task_with_gold(
                s, spec=spec, gold_ranking=[[0], [1], [2], [3]], created_by=researcher
            )
            ids.append(task.id)
    yield ids
    with live_server.session() as s:  # out of later tests' screening queues
        for task_id in ids:
            s.get(RankingTask, task_id).status = TaskStatus.archived


def _labeler(live_server, name: str) -> None:
    with live_server.session() as s:
        user_service.create_user(s, username=name, password=PASSWORD, role=Role.labeler, status=UserStatus.screening)


def _rank(page, *, reverse: bool) -> None:
    page.wait_for_selector("#task:not([hidden]) #pool .output")
    texts = page.locator("#pool .output").evaluate_all(
        "els => els.map(e => [e.dataset.id, e.querySelector('.output-text').textContent])"
    )
    for cid, text in texts:
        rank = next(i for i, w in enumerate(ORDER) if text.strip().endswith(w))
        select = page.locator(f'#task .output[data-id="{cid}"] .rank-select')
        select.select_option(str(4 - rank if reverse else rank + 1))
    page.click("#submit-button")


def test_a_screening_labeler_sees_progress_and_passes(page, live_server, screening_set):
    _labeler(live_server, "screen-pass")
    login(page, "screen-pass", PASSWORD)
    assert page.url.endswith("/label")  # a labeler lands on the ranking page
    assert page.locator("#screening h2").inner_text() == "Screening: 0 of 2 ranked"
    assert "agree with the researchers'" in page.locator("#screening").inner_text()
    _rank(page, reverse=False)
    page.wait_for_function("document.getElementById('screening-done').textContent === '1'")
    _rank(page, reverse=False)
    page.wait_for_function("document.getElementById('status').textContent.includes('passed screening')")
    assert page.locator("#screening").is_hidden()
    with live_server.session() as s:
        assert s.scalars(select(User).where(User.username == "screen-pass")).one().status == UserStatus.active


def test_a_failed_screening_is_explained_and_label_is_no_longer_offered(page, live_server, screening_set):
    _labeler(live_server, "screen-fail")
    login(page, "screen-fail", PASSWORD)
    _rank(page, reverse=True)
    page.wait_for_function("document.getElementById('screening-done').textContent === '1'")
    _rank(page, reverse=True)
    page.wait_for_selector("#outcome:not([hidden])")
    assert "review your answers" in page.locator("#outcome").inner_text()
    assert page.locator("#task").is_hidden() and page.locator("#submit-button").is_hidden()
    # issue 21: no "n of N ranked" beside the verdict, and no Skip or Raw text without a task
    assert page.locator("#screening").is_hidden() and page.locator(".ranker-bar").is_hidden()
    assert page.locator("#skip-button").is_hidden() and page.locator("#raw-button").is_hidden()
    assert page.evaluate("window.scrollY") == 0
    assert_accessible(page)
    page.goto("/")
    assert page.locator("nav a", has_text="Label").count() == 0
    assert "reviewing your screening answers" in page.locator("#status-note").inner_text()


def test_with_no_screening_task_ready_the_queue_says_so(page, live_server):
    _labeler(live_server, "screen-wait")
    login(page, "screen-wait", PASSWORD)
    page.wait_for_selector("#empty:not([hidden])")
    assert "No screening task is ready" in page.locator("#empty").inner_text()


def test_the_screening_card_counts_the_demonstration_as_it_is_written(page, live_server, screening_set, monkeypatch):
    """A screening set of one ranking and one demonstration: the card says both, and the count moves on submit."""
    from app.services import demonstrations as demo_service
    from app.services.prompts import get_or_create_prompt

    monkeypatch.setattr(live_server.settings, "screening_set_size", 1)
    monkeypatch.setattr(live_server.settings, "screening_demonstrations", 1)
    with live_server.session() as s:
        prompt, _ = get_or_create_prompt(s, text="Screening: say what fog is.")
        [task] = demo_service.create_demonstration_tasks(s, prompt_ids=[prompt.id], created_by=None,
                                                         kind=TaskKind.screening)  # fmt: skip
        demo_task = task.id
    try:
        _labeler(live_server, "screen-demo")
        login(page, "screen-demo", PASSWORD)
        assert page.locator("#screening-demos").inner_text().startswith("Demonstrations: 0 of 1 written")
        _rank(page, reverse=False)
        page.wait_for_selector("#demo-task:not([hidden])")
        page.fill("#demo-text", "Fog is a cloud that touches the ground.")
        page.click("#demo-submit")
        page.wait_for_function("document.getElementById('screening-demos-done').textContent === '1'")
    finally:
        with live_server.session() as s:
            s.get(RankingTask, demo_task).status = TaskStatus.archived
