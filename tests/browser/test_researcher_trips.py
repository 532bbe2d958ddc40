"""Issue 21, researchers and admins: the last admin, post/redirect/get, saying what an action did and returning to its
row, why a round waits, the task's kind and an empty queue on the ranking page, /api/docs writes, wide tables; and
(item 5) the letters each labeler saw, on the researcher's task page."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import select

from app.models import (
    ModelKind,
    ModelVersion,
    Role,
    Round,
    RoundStatus,
    TaskKind,
    TaskStatus,
    User,
    UserStatus,
)
from app.schemas.rounds import RoundParams
from app.services import rounds as round_service
from app.services import users as user_service
from app.services.prompts import get_or_create_prompt
from app.services.tasks import NewCompletion, create_task
from tests.agreement.helpers import add_ranking
from tests.browser.conftest import login, only_new_tasks

pytestmark = pytest.mark.browser
PASSWORD = "browser-trips-pass"


def _user(live_server, name: str, role: Role, status: UserStatus = UserStatus.active) -> int:
    with live_server.session() as s:
        return user_service.create_user(s, username=name, password=PASSWORD, role=role, status=status).id


@contextmanager
def _alone_as_admin(live_server, username: str):  # type: ignore[no-untyped-def]
    """Every other admin paused meanwhile, so `username` is the install's only active admin."""
    with live_server.session() as s:
        others = [u.id for u in s.scalars(select(User).where(User.role == Role.admin, User.username != username))]
        was = {uid: s.get(User, uid).status for uid in others}
        for uid in others:
            s.get(User, uid).status = UserStatus.paused
    try:
        yield
    finally:
        with live_server.session() as s:
            for uid, status in was.items():
                s.get(User, uid).status = status


def _manage(page, username: str, role: str) -> None:  # type: ignore[no-untyped-def]
    row = page.locator(f'tr[data-user="{username}"]')
    row.locator("summary").click()
    row.locator("select[name=role]").select_option(role)
    row.locator("button", has_text="Change role").click()


# 9 ---------------------------------------------------------------------------------------------------------------
def test_the_last_admin_stays_and_demoting_yourself_is_confirmed(page, live_server):
    _user(live_server, "lone-admin", Role.admin)
    with _alone_as_admin(live_server, "lone-admin"):
        login(page, "lone-admin", PASSWORD)
        page.goto("/admin/users")
        _manage(page, "lone-admin", "researcher")
        page.wait_for_selector("#confirm-self-demotion")  # asked first, nothing changed yet
        assert "You are about to make yourself researcher" in page.inner_text("#confirm-self-demotion")
        with live_server.session() as s:
            assert s.scalars(select(User).where(User.username == "lone-admin")).one().role == Role.admin
        page.click("#confirm-self-demotion button[type=submit]")
        assert "last active admin" in page.inner_text("#admin-error")  # refused: the install would have none
        with live_server.session() as s:
            assert s.scalars(select(User).where(User.username == "lone-admin")).one().role == Role.admin
        # with a second admin, a confirmed self-demotion goes through (and ends the admin's session)
        page.click("details.new-account summary")
        page.fill("#create-user input[name=username]", "second-admin")
        page.fill("#create-user input[name=password]", "second-admin-pass")
        page.select_option("#create-user select[name=role]", "admin")
        page.click("#create-user button[type=submit]")
        _manage(page, "lone-admin", "researcher")
        page.click("#confirm-self-demotion button[type=submit]")
        page.wait_for_url("**/login**")
        with live_server.session() as s:
            assert s.scalars(select(User).where(User.username == "lone-admin")).one().role == Role.researcher


# 10 --------------------------------------------------------------------------------------------------------------
def test_form_posts_redirect_and_say_what_happened_once(page, live_server, tmp_path):
    _user(live_server, "prg-admin", Role.admin)
    target = _user(live_server, "prg-target", Role.labeler)
    login(page, "prg-admin", PASSWORD)
    page.goto("/admin/users")
    row = page.locator('tr[data-user="prg-target"]')
    row.locator("summary").click()
    row.locator("input[name=password]").fill("a-new-password-9")
    row.locator("button", has_text="Set password").click()
    page.wait_for_url(f"**/admin/users#user-{target}")  # a GET page, at the row: a refresh sends nothing again
    assert "New password set for prg-target" in page.inner_text("#flash")
    page.reload()
    assert page.locator("#flash").count() == 0  # said once
    # the researcher's prompt upload too
    _user(live_server, "prg-researcher", Role.researcher)
    page.context.clear_cookies()
    login(page, "prg-researcher", PASSWORD)
    page.goto("/prompts")
    upload = tmp_path / "prompts.jsonl"
    upload.write_text('{"text": "prg prompt one"}\n{"text": "prg prompt two"}\n')
    page.set_input_files("#upload input[type=file]", str(upload))
    page.click("#upload button[type=submit]")
    page.wait_for_url("**/prompts")
    assert "Imported 2 new prompt(s)" in page.inner_text("#flash")
    page.reload()
    assert page.locator("#flash").count() == 0


# 11 --------------------------------------------------------------------------------------------------------------
def test_promote_and_approve_say_what_happened_and_return_to_the_row(page, live_server):
    with live_server.session() as s:
        researcher = user_service.create_user(s, username="row-res", password=PASSWORD, role=Role.researcher)
        labs = [
            user_service.create_user(s, username=f"row-lab{i}", password=PASSWORD, role=Role.labeler,
                                     status=UserStatus.active)
            for i in range(2)
        ]  # fmt: skip
        pending = user_service.create_user(
            s, username="row-pending", password=PASSWORD, role=Role.labeler, status=UserStatus.pending_review
        )
        prompt, _ = get_or_create_prompt(s, text="row test: which is best")
        task = create_task(s, prompt=prompt, completions=[NewCompletion(text=f"row {i}") for i in range(4)], overlap=2)
        add_ranking(s, task=task, user=labs[0], order=[[0], [1], [2], [3]])
        add_ranking(s, task=task, user=labs[1], order=[[3], [2], [1], [0]])
        task.status = TaskStatus.complete
        task_id, pending_id = task.id, pending.id
        del researcher
    login(page, "row-res", PASSWORD)
    page.goto("/dashboard/disagreements")
    page.locator(f'section[data-task="{task_id}"] button', has_text="Turn into a gold task").click()
    page.wait_for_url(f"**/dashboard/disagreements#task-{task_id}")
    assert f"Task {task_id} is a gold task now" in page.inner_text("#flash")
    assert page.evaluate("document.querySelector(':target').id") == f"task-{task_id}"
    page.goto("/dashboard/labelers")
    row = page.locator('tr[data-labeler="row-pending"]')
    row.locator("summary").click()
    row.locator("button", has_text="approve").click()
    page.wait_for_url(f"**/dashboard/labelers#labeler-{pending_id}")
    assert "row-pending: approve done; their account is now active" in page.inner_text("#flash")
    assert page.evaluate("document.querySelector(':target').dataset.labeler") == "row-pending"


# 12 --------------------------------------------------------------------------------------------------------------
def test_a_running_round_says_why_it_waits_and_a_second_round_asks_first(page, live_server, tmp_path):
    _user(live_server, "wait-res", Role.researcher)
    with live_server.session() as s:
        s.add(ModelVersion(kind=ModelKind.sft, name="wait-sft", path=str(tmp_path / "sft")))
        s.flush()
        get_or_create_prompt(s, text="wait round prompt")
        round_id = round_service.create_round(s, params=RoundParams(sample={"n_unlabeled": 1})).id
    try:
        login(page, "wait-res", PASSWORD)
        page.goto("/models")
        waiting = page.locator(f'tr.round-waiting[data-round-id="{round_id}"]').inner_text()
        assert "sample job" in waiting and "is queued" in waiting and "No worker is alive" in waiting
        assert f"{round_id}" in page.inner_text("#round-running")
        rows = "#rounds-table tbody tr[data-round-id]:not(.round-waiting)"
        before = page.locator(rows).count()
        page.click("#start-round button[type=submit]")
        assert page.evaluate("document.querySelector('input[name=confirm_second]').validity.valueMissing")
        page.wait_for_timeout(300)
        page.reload()
        assert page.locator(rows).count() == before
        page.check("input[name=confirm_second]")
        page.click("#start-round button[type=submit]")
        page.wait_for_function(f"document.querySelectorAll({rows!r}).length > {before}")
    finally:
        with live_server.session() as s:  # out of the way of other tests' rounds
            for r in s.scalars(select(Round).where(Round.status == RoundStatus.running)):
                round_service.cancel_round(s, round_id=r.id)


# 13 --------------------------------------------------------------------------------------------------------------
def test_a_researcher_is_told_the_task_kind_and_an_empty_queue_is_not_promised(page, live_server):
    with live_server.session() as s:
        user_service.create_user(s, username="kind-res", password=PASSWORD, role=Role.researcher)
    with only_new_tasks(live_server):
        with live_server.session() as s:
            prompt, _ = get_or_create_prompt(s, text="kind test: a gold task to rank")
            outputs = [NewCompletion(text=f"kind {i}") for i in range(4)]
            create_task(s, prompt=prompt, completions=outputs, kind=TaskKind.gold)
        login(page, "kind-res", PASSWORD)
        page.goto("/label")
        page.wait_for_selector("#task:not([hidden]) #pool .output")
        assert "Gold task" in page.inner_text("#task-kind")
        for key in ("1", "2", "3", "4", "Enter"):
            page.keyboard.press(key)
        page.wait_for_selector("#empty:not([hidden])")
        assert page.inner_text("#status") == "Saved. Nothing else to rank right now."


def test_a_labeler_is_never_told_the_task_kind(page, live_server):
    import httpx

    _user(live_server, "kind-lab", Role.labeler)
    with only_new_tasks(live_server), live_server.session() as s:
        prompt, _ = get_or_create_prompt(s, text="kind test: a production task")
        create_task(s, prompt=prompt, completions=[NewCompletion(text=f"pk {i}") for i in range(4)])
    with httpx.Client(base_url=live_server.base_url) as api:
        token = api.post("/api/v1/auth/token", data={"username": "kind-lab", "password": PASSWORD}).json()
        got = api.get("/api/v1/labeling/next", headers={"Authorization": f"Bearer {token['access_token']}"})
        assert got.status_code == 200 and "kind" not in got.json()


# 14 --------------------------------------------------------------------------------------------------------------
def test_api_docs_authorize_and_cookie_writes_work(page, live_server):
    _user(live_server, "docs-res", Role.researcher)
    login(page, "docs-res", PASSWORD)
    page.goto("/api/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=15_000)
    # a write with the login cookie: the docs page sends the CSRF token itself
    op = page.locator('.opblock-post:has(.opblock-summary-path[data-path="/api/v1/jobs"])')
    op.locator(".opblock-summary-control").click()
    op.locator("button.try-out__btn").click()
    op.locator("textarea.body-param__text").fill('{"kind": "export", "params": {}}')
    op.locator("button.execute").click()
    status = op.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "201", op.locator(".live-responses-table").inner_text()
    # Authorize: the schema declares the OAuth2 password flow, so Swagger UI asks for a username and password
    page.click("button.authorize")
    page.fill(".auth-container input#oauth_username", "docs-res")
    page.fill(".auth-container input#oauth_password", PASSWORD)
    page.click(".auth-container button.authorize")
    page.wait_for_selector(".auth-container button:has-text('Logout')")


# 15 --------------------------------------------------------------------------------------------------------------
def test_wide_tables_fold_and_actions_come_first(page, live_server):
    _user(live_server, "wide-res", Role.researcher)
    _user(live_server, "a-labeler-with-a-rather-long-username-indeed", Role.labeler, UserStatus.pending_review)
    page.set_viewport_size({"width": 1366, "height": 900})
    login(page, "wide-res", PASSWORD)
    page.goto("/dashboard/labelers")
    widths = page.evaluate(
        "() => { const t = document.querySelector('table.labelers');"
        " return [t.scrollWidth, t.parentElement.clientWidth]; }"
    )
    assert widths[0] <= widths[1], widths  # no sideways scrolling at 1366 px
    page.goto("/prompts")
    upload = page.locator("#upload").bounding_box()
    table = page.locator("table").first.bounding_box()
    assert upload["y"] < table["y"] and upload["y"] < 900  # the import form first, in view without scrolling
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/dashboard/labelers")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # folded into label: value rows


# 5 ---------------------------------------------------------------------------------------------------------------
def test_the_task_page_shows_the_letters_each_labeler_saw(page, live_server):
    with live_server.session() as s:
        user_service.create_user(s, username="letters-res", password=PASSWORD, role=Role.researcher)
        lab = user_service.create_user(
            s, username="letters-lab", password=PASSWORD, role=Role.labeler, status=UserStatus.active
        )
        prompt, _ = get_or_create_prompt(s, text="letters test prompt")
        task = create_task(s, prompt=prompt, completions=[NewCompletion(text=f"letters {i}") for i in range(4)])
        # they saw the outputs as C, A, D, B of the task's order; their note cites "output D" = the task's B
        ranking = add_ranking(s, task=task, user=lab, order=[[2], [0], [3], [1]], display=[2, 0, 3, 1])
        ranking.note = "output D is copied from the prompt"
        task.status = TaskStatus.complete
        task_id = task.id
    login(page, "letters-res", PASSWORD)
    page.goto(f"/tasks/{task_id}")
    row = page.locator("tr.ranking-row", has_text="letters-lab")
    mapping = row.locator("td.their-letters").inner_text()
    assert mapping == "their A = C, their B = A, their C = D, their D = B"
    assert "output D" in row.inner_text()
