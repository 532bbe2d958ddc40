"""A researcher opens every agreement dashboard (charts drawn, figures shown, pause works); a labeler gets 403."""

from __future__ import annotations

import pytest

from app.models import Role, TaskKind, UserStatus
from app.services import users as user_service
from tests.agreement.helpers import add_ranking, make_task, singletons
from tests.browser.conftest import login

pytestmark = pytest.mark.browser
PASSWORD = "browser-pass-123"
CHARTED = {"/dashboard": 2, "/dashboard/labelers": 1, "/dashboard/disagreements": 1}


def _seed(live_server) -> tuple[int, int]:
    with live_server.session() as s:
        researcher = user_service.create_user(s, username="dash_res", password=PASSWORD, role=Role.researcher)
        lab = user_service.create_user(
            s, username="dash_lab", password=PASSWORD, role=Role.labeler, status=UserStatus.active
        )
        for i in range(3):
            task = make_task(s, kind=TaskKind.gold)
            add_ranking(s, task=task, user=researcher, order=singletons([0, 1, 2, 3]))
            add_ranking(s, task=task, user=lab, order=singletons([1, 0, 2, 3] if i == 0 else [0, 1, 2, 3]), seconds=9)
        return researcher.id, lab.id


def test_dashboards_for_researchers_only(page, browser, live_server):
    _, lab_id = _seed(live_server)
    login(page, "dash_res", PASSWORD)
    pages = [*CHARTED, "/dashboard/matrix", f"/dashboard/labelers/{lab_id}"]
    for url in pages:
        response = page.goto(url)
        assert response is not None and response.status == 200, url
        page.wait_for_selector("body[data-charts-drawn]")
        canvases = page.locator("canvas[data-chart]")
        drawn = page.evaluate(
            "() => [...document.querySelectorAll('canvas[data-chart]')].filter(c => Chart.getChart(c)).length"
        )
        assert drawn == canvases.count() == int(page.locator("body").get_attribute("data-charts-drawn")), url
        assert drawn == CHARTED.get(url, 1 if "/labelers/" in url else 0), url
    # figures: 17 of 18 pairs agree with the researcher (one adjacent swap on one task)
    page.goto("/dashboard/labelers")
    row = page.locator('tr[data-labeler="dash_lab"]')
    assert row.locator('td[data-field="gold"]').inner_text() == "94.4%"
    page.goto("/dashboard")
    assert page.locator('[data-figure="gold"] .big').inner_text() == "94.4%"
    # pause the labeler from the table (a CSRF-protected form)
    page.goto("/dashboard/labelers")
    row.locator("summary").click()  # the actions fold into the row's "Act" (issue 21: the table fits its card)
    row.locator("button", has_text="pause").click()
    page.wait_for_url("**/dashboard/labelers#labeler-*")
    assert "paused" in page.locator('tr[data-labeler="dash_lab"]').inner_text()

    context = browser.new_context(base_url=live_server.base_url, bypass_csp=True)
    other = context.new_page()
    with live_server.session() as s:
        user_service.create_user(
            s, username="dash_lab2", password=PASSWORD, role=Role.labeler, status=UserStatus.active
        )
    login(other, "dash_lab2", PASSWORD)
    for url in pages:
        response = other.goto(url)
        assert response is not None and response.status == 403, url
    context.close()


def test_small_n_figures_carry_their_n_intervals_and_error_bars(page, live_server):
    """Issue 15: position bias with its n, no kappa without flags, the peers' interval, whiskers on the chart."""
    with live_server.session() as s:
        researcher = user_service.create_user(s, username="small_res", password=PASSWORD, role=Role.researcher)
        labs = [
            user_service.create_user(
                s, username=f"small_lab{i}", password=PASSWORD, role=Role.labeler, status=UserStatus.active
            )
            for i in (1, 2)
        ]
        for _ in range(3):
            task = make_task(s, kind=TaskKind.gold)
            add_ranking(s, task=task, user=researcher, order=singletons([0, 1, 2, 3]))
            for lab in labs:
                add_ranking(s, task=task, user=lab, order=singletons([0, 1, 2, 3]), seconds=5, display=[0, 1, 2, 3])
    login(page, "small_res", PASSWORD)
    page.goto("/dashboard/labelers")
    page.wait_for_selector("body[data-charts-drawn]")
    row = page.locator('tr[data-labeler="small_lab1"]')
    assert "(n=3)" in row.locator('td[data-field="bias"]').inner_text()
    assert "too few" in row.locator('td[data-field="bias"]').inner_text()
    assert row.locator('td[data-field="kappa"]').inner_text() == "no flags used"  # not a perfect 1.00
    assert "–" in row.locator('td[data-field="peers-ci"]').inner_text()
    assert int(page.locator('canvas[data-chart="labelers"]').get_attribute("data-error-bars") or 0) >= 2


def test_a_figure_under_the_cutoff_never_reads_as_the_cutoff() -> None:
    from app.routes.dashboard import pct_against

    assert pct_against(0.7496, 0.75) == "74.96%"
    assert pct_against(0.74999, 0.75) == "74.999%"
    assert pct_against(0.75, 0.75) == "75.0%" and pct_against(0.7504, 0.75) == "75.0%"
    assert pct_against(None, 0.75) == "—"
