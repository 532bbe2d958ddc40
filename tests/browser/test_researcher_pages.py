"""Issue 15, item 10: the researchers' pages in a browser."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import login

pytestmark = pytest.mark.browser
PASSWORD = "browser-pass-123"


def test_api_docs_render_from_vendored_files_under_the_csp(browser, live_server):
    context = browser.new_context(base_url=live_server.base_url)  # the real CSP
    page = context.new_page()
    problems: list[str] = []
    page.on(
        "console",
        lambda msg: (
            problems.append(msg.text) if msg.type == "error" and "favicon" not in msg.location.get("url", "") else None
        ),
    )
    outside: list[str] = []
    page.on(
        "request",
        lambda req: (
            outside.append(req.url)
            if not req.url.startswith(live_server.base_url) and not req.url.startswith("data:")
            else None
        ),
    )
    try:
        page.goto("/api/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=15_000)
        assert page.locator(".opblock").count() > 20
        assert "ranklab" in page.locator(".info .title").inner_text()
        assert outside == [] and problems == []
    finally:
        context.close()


def test_a_browser_gets_pages_not_json_for_unknown_paths_and_bad_parameters(page, live_server):
    from app.models import Role
    from app.services import users as user_service

    with live_server.session() as s:
        user_service.create_user(s, username="err-res", password=PASSWORD, role=Role.researcher)
    login(page, "err-res", PASSWORD)
    missing = page.goto("/no/such/page")
    assert missing is not None and missing.status == 404
    assert "no page at /no/such/page" in page.locator("p.error").inner_text()
    assert page.locator("a", has_text="Back to the start page").count() == 1
    bogus = page.goto("/tasks?kind=bogus")
    assert bogus is not None and bogus.status == 422
    assert "kind" in page.locator("p.error").inner_text() and "{" not in page.locator("body").inner_text()
    # the API still answers JSON
    api = page.request.get("/api/v1/no-such-endpoint")
    assert api.status == 404 and api.json() == {"detail": "Not Found"}


def test_a_huge_prompt_or_output_stays_inside_the_researcher_pages(page, live_server):
    from app.models import Role, UserStatus
    from app.services import users as user_service
    from app.services.prompts import get_or_create_prompt
    from app.services.tasks import NewCompletion, create_task
    from tests.agreement.helpers import add_ranking

    huge = "x" * 20_000  # one unbreakable word
    with live_server.session() as s:
        researcher = user_service.create_user(s, username="long-res", password=PASSWORD, role=Role.researcher)
        get_or_create_prompt(s, text="long-res " + huge)
        prompt, _ = get_or_create_prompt(s, text="long-res disputed " + huge)
        texts = [huge, "b", "c", "d"]
        task = create_task(s, prompt=prompt, completions=[NewCompletion(text=t) for t in texts], overlap=2)
        labs = [
            user_service.create_user(
                s, username=f"long-lab{i}", password=PASSWORD, role=Role.labeler, status=UserStatus.active
            )
            for i in (1, 2)
        ]
        add_ranking(s, task=task, user=labs[0], order=[[0], [1], [2], [3]])
        add_ranking(s, task=task, user=labs[1], order=[[3], [2], [1], [0]])
        del researcher
    login(page, "long-res", PASSWORD)
    for path in ("/prompts?q=long-res", "/dashboard/disagreements"):
        page.goto(path)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), path
        assert len(page.locator("main").inner_text()) < 8_000, path  # excerpts, not 20,000 characters
        assert re.search(r"20,0\d\d characters", page.locator("main").inner_text()), path


def test_a_schedule_made_with_the_forms_defaults_is_accepted(page, live_server):
    """The form starts on its first kind with params that kind accepts; another kind brings its own."""
    from app.models import Role
    from app.services import users as user_service

    with live_server.session() as s:
        user_service.create_user(s, username="sched-res", password=PASSWORD, role=Role.researcher)
    login(page, "sched-res", PASSWORD)
    page.goto("/schedules")
    page.fill("#new-schedule input[name=name]", "nightly sampling")
    page.fill("#new-schedule input[name=cron]", "0 3 * * *")
    page.click("#new-schedule button[type=submit]")
    page.wait_for_selector('#schedules-table td:text-is("nightly sampling")')
    page.select_option("#new-schedule select[name=kind]", "export")
    assert '"format": "pairs"' in page.input_value("#new-schedule textarea")
    page.fill("#new-schedule textarea", '{"format": "pairs"}')  # edited by hand: a kind change keeps it
    page.select_option("#new-schedule select[name=kind]", "evaluate")
    assert page.input_value("#new-schedule textarea") == '{"format": "pairs"}'


def test_a_queued_job_says_where_it_stands_and_who_works(page, live_server):
    from sqlalchemy import func, select

    from app.models import Job, JobKind, JobStatus, Role, utcnow
    from app.services import users as user_service

    with live_server.session() as s:
        user_service.create_user(s, username="queue-res", password=PASSWORD, role=Role.researcher)
        # other tests may have left queued jobs: they are ahead of ours
        waiting = s.scalar(select(func.count()).select_from(Job).where(Job.status == JobStatus.queued)) or 0
        sampling = Job(
            kind=JobKind.sample,
            params={"n_unlabeled": 20},
            status=JobStatus.running,
            worker_id="worker-a",
            device="cpu",
            heartbeat_at=utcnow(),
            progress=0.4,
        )
        s.add(sampling)
        s.flush()
        first = Job(kind=JobKind.export, params={}, status=JobStatus.queued)
        s.add(first)
        s.flush()
        second = Job(kind=JobKind.export, params={}, status=JobStatus.queued)
        s.add(second)
        s.flush()
        ids = (sampling.id, first.id, second.id)
    login(page, "queue-res", PASSWORD)
    try:
        page.goto(f"/jobs/{ids[2]}")
        queue = page.locator("#queue")
        assert f"number {waiting + 2} in line" in queue.inner_text()
        assert f"job {ids[1]} · export" in queue.inner_text()
        assert f"worker-a (cpu) runs job {ids[0]} · sample, 40% done" in queue.inner_text()
        # worker-a has no row in the workers table (a worker from before it): alive and busy, through its job
        assert page.locator("#queue-waiting").get_attribute("data-waiting") == "all_busy"
    finally:
        with live_server.session() as s:  # nothing left for other tests' queues
            for job_id in ids:
                s.get(Job, job_id).status = JobStatus.cancelled


def test_an_admin_manages_users_from_a_page(browser, page, live_server):
    from app.models import Role, User, UserStatus
    from app.services import users as user_service

    with live_server.session() as s:
        user_service.create_user(s, username="users-admin", password=PASSWORD, role=Role.admin)
        user_service.create_user(
            s, username="users-lab", password=PASSWORD, role=Role.labeler, status=UserStatus.active
        )
    other = browser.new_context(base_url=live_server.base_url, bypass_csp=True)
    lab_page = other.new_page()
    login(lab_page, "users-lab", PASSWORD)
    try:
        login(page, "users-admin", PASSWORD)
        page.click("nav a:text-is('Users')")
        page.wait_for_url("**/admin/users")
        # create an account
        page.click("details.new-account summary")
        page.fill("#create-user input[name=username]", "users-new")
        page.fill("#create-user input[name=password]", "a-long-password-1")
        page.select_option("#create-user select[name=role]", "researcher")
        page.click("#create-user button[type=submit]")
        assert "Created users-new (researcher)" in page.locator("#flash").inner_text()
        assert page.url.endswith("/admin/users#user-" + page.get_attribute('tr[data-user="users-new"]', "id")[5:])
        row = page.locator('tr[data-user="users-lab"]')
        # reset a password, change a role, sign out everywhere
        row.locator("summary").click()
        row.locator("input[name=password]").fill("another-password-2")
        row.locator("button", has_text="Set").click()
        assert "New password set for users-lab" in page.locator("#flash").inner_text()
        row = page.locator('tr[data-user="users-lab"]')
        row.locator("summary").click()
        row.locator("select[name=role]").select_option("researcher")
        row.locator("button", has_text="Change").click()
        assert "users-lab is now researcher" in page.locator("#flash").inner_text()
        page.locator('tr[data-user="users-lab"] summary').click()
        page.locator('tr[data-user="users-lab"]').locator("button", has_text="Sign out everywhere").click()
        assert "signed out everywhere" in page.locator("#flash").inner_text()
        lab_page.goto("/label")
        assert "/login" in lab_page.url  # the session ended
        # a bad password is refused on the page, with the reason
        page.locator('tr[data-user="users-lab"] summary').click()
        page.locator('tr[data-user="users-lab"]').locator("input[name=password]").fill("short")
        page.locator('tr[data-user="users-lab"]').locator("input[name=password]").evaluate(
            "el => el.removeAttribute('minlength')"
        )
        page.locator('tr[data-user="users-lab"]').locator("button", has_text="Set").click()
        assert page.locator("#admin-error").inner_text() != ""
    finally:
        other.close()
    with live_server.session() as s:
        from sqlalchemy import select

        assert s.scalars(select(User).where(User.username == "users-new")).one().role == Role.researcher
