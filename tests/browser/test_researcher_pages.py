"""Issue 15, item 10: the researchers' pages in a browser."""

from __future__ import annotations

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
