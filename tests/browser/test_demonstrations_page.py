"""Issue 18, the researcher's side in the browser: review demonstrations on /demonstrations (the conversation, the
diff of a rewrite, accept, reject with a reason, per-labeler acceptance rates), create demonstration tasks from the
prompts page, and the task page's conversation turns."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import Demonstration, DemonstrationStatus, RankingTask, Role, TaskType
from app.services import users as user_service
from app.services.prompts import get_or_create_prompt
from app.services.tasks import NewCompletion, create_task
from tests.browser import demo_seed
from tests.browser.a11y import violations
from tests.browser.conftest import login, only_new_tasks

pytestmark = pytest.mark.browser
PASSWORD = demo_seed.PASSWORD
THREE_TURNS = [
    {"role": "user", "content": "review-conv: what is **rain**?"},
    {"role": "assistant", "content": "Water falling from clouds."},
    {"role": "user", "content": "review-conv: and snow?"},
]


def _researcher(live_server, username: str) -> None:
    with live_server.session() as s:
        user_service.create_user(s, username=username, password=PASSWORD, role=Role.researcher)


def test_researcher_reviews_demonstrations(page, live_server):
    _researcher(live_server, "review-res")
    with only_new_tasks(live_server), live_server.session() as s:
        a, b = demo_seed.labeler(s, "review-lab-a"), demo_seed.labeler(s, "review-lab-b")
        written = demo_seed.write(s, live_server.settings, a, messages=THREE_TURNS, content="Frozen *rain*.").id
        rewritten = demo_seed.write(
            s,
            live_server.settings,
            b,
            messages=[{"role": "user", "content": "review-conv: name a colour"}],
            content="Blue.\nLike the sky.",
            outputs=[f"Red {i}.\nLike fire." for i in range(4)],
            rewrite=0,
        ).id
        edited = demo_seed.write(
            s,
            live_server.settings,
            a,
            messages=[{"role": "user", "content": "review-conv: spell colour"}],
            content="colr",
        ).id
    login(page, "review-res", PASSWORD)
    page.goto("/demonstrations")
    assert page.locator("nav a", has_text="Demonstrations").count() == 1
    first, second = page.locator(f"#demo-{written}"), page.locator(f"#demo-{rewritten}")
    # the conversation's turns with their roles, rendered as markdown
    assert first.locator(".turn-role").all_inner_texts() == ["User", "Assistant", "User"]
    first.locator(".turn strong", has_text="rain").wait_for()
    assert "written from scratch" in first.inner_text() and first.locator(".diff").count() == 0
    # a rewrite shows what changed against the output it started from
    assert "rewritten from a sampled output" in second.inner_text()
    removed = second.locator(".diff .removed").all_inner_texts()
    assert len(removed) == 2 and removed[0].startswith("- Red ") and removed[1] == "- Like fire."
    assert second.locator(".diff .added").all_inner_texts() == ["+ Blue.", "+ Like the sky."]
    assert violations(page) == []  # the sweep sees an empty list; here a conversation and a diff are on the page
    # accept one
    first.get_by_role("button", name="Accept").click()
    assert page.locator("#flash").inner_text() == f"Demonstration {written} accepted."
    # rejecting needs a reason, which the labeler will see
    page.locator(f"#reason-{rewritten}").fill("Does not answer the question asked.")
    page.locator(f"#demo-{rewritten}").get_by_role("button", name="Reject").click()
    assert page.locator("#flash").inner_text() == f"Demonstration {rewritten} rejected."
    assert page.locator(f"#demo-{written}").count() == 0  # the default list is what still waits for review
    # edit and accept: the reviewer's text is what trains; the labeler's stays beside it
    page.locator(f"#demo-{edited} summary", has_text="Edit and accept").click()
    page.fill(f"#edit-{edited}", "colour")
    page.locator(f"#demo-{edited}").get_by_role("button", name="Save the edit and accept").click()
    assert page.locator("#flash").inner_text() == f"Demonstration {edited} edited and accepted."
    page.select_option("#status-filter", "rejected")
    page.click("form.inline-form button:has-text('Filter')")
    assert "Does not answer the question asked." in page.locator(f"#demo-{rewritten} .demo-reason").inner_text()
    rates = {
        name: page.locator(f'#demo-stats tr[data-labeler="{name}"] .acceptance').inner_text()
        for name in ("review-lab-a", "review-lab-b")
    }
    assert rates["review-lab-a"].startswith("100%") and rates["review-lab-b"].startswith("0%")
    # one labeler's demonstrations, whatever their status
    page.select_option("#status-filter", "")
    page.click("form.inline-form button:has-text('Filter')")
    page.locator("#demo-stats a", has_text="review-lab-a").click()
    assert sorted(int(x) for x in page.locator("[data-demo]").evaluate_all("ns => ns.map(n => n.dataset.demo)")) == [
        written,
        edited,
    ]
    assert "What the labeler wrote before the edit" in page.locator(f"#demo-{edited}").inner_text()
    with live_server.session() as s:
        assert s.get(Demonstration, written).status == DemonstrationStatus.accepted
        assert s.get(Demonstration, rewritten).status == DemonstrationStatus.rejected
        fixed = s.get(Demonstration, edited)
        assert (fixed.status, fixed.content, fixed.original_content) == (DemonstrationStatus.accepted, "colour", "colr")


def test_researcher_creates_demonstration_tasks_from_prompts(page, live_server):
    _researcher(live_server, "prompts-res")
    with live_server.session() as s:
        ticked, _ = get_or_create_prompt(s, text="prompts-res: ticked prompt")
        listed, _ = get_or_create_prompt(s, text="prompts-res: listed prompt")
        ids = (ticked.id, listed.id)
    login(page, "prompts-res", PASSWORD)
    page.goto("/prompts?q=prompts-res")
    page.get_by_label(f"Select prompt {ids[0]}").check()
    page.fill("#demo-prompt-ids", str(ids[1]))
    page.click("#create-demo-tasks")
    assert page.locator("#flash").inner_text() == "Created 2 demonstration task(s)."
    page.fill("#demo-prompt-ids", "12x")
    page.click("#create-demo-tasks")
    assert "No demonstration task was created" in page.locator("#flash").inner_text()
    with live_server.session() as s:
        tasks = s.scalars(select(RankingTask).where(RankingTask.prompt_id.in_(ids))).all()
        assert sorted(t.prompt_id for t in tasks) == sorted(ids)
        assert all(t.task_type == TaskType.demonstration for t in tasks)


def test_task_page_shows_the_conversation_turns(page, live_server):
    _researcher(live_server, "turns-res")
    with live_server.session() as s:
        prompt, _ = get_or_create_prompt(
            s,
            messages=[
                {"role": "system", "content": "Be kind."},
                *THREE_TURNS[:2],
                {"role": "user", "content": "turns-res: last turn"},
            ],
        )
        task_id = create_task(s, prompt=prompt, completions=[NewCompletion(text=f"t {i}") for i in range(4)]).id
    login(page, "turns-res", PASSWORD)
    page.goto(f"/tasks/{task_id}")
    assert page.locator(".turn-role").all_inner_texts() == ["System", "User", "Assistant", "User"]
    earlier = page.locator("details.turns-earlier")
    assert earlier.locator(".turn").count() == 2
    earlier.locator("summary").click()
    assert not earlier.locator(".turn").first.is_visible()
    assert page.locator(".conversation > .turn").last.inner_text().endswith("turns-res: last turn")
    page.locator(".turn strong", has_text="rain").wait_for(state="attached")  # markdown in every turn


def test_models_page_lists_sft_versions_with_their_metrics(page, live_server, tmp_path):
    from app.models import ModelKind, ModelVersion

    _researcher(live_server, "sft-res")
    with live_server.session() as s:
        base = ModelVersion(kind=ModelKind.sft, name="sft-page-base", path=str(tmp_path / "base"))
        s.add(base)
        s.flush()
        metrics = {
            "method": "sft",
            "val_loss": 1.25,
            "val_perplexity": 3.4903,
            "base_val_loss": 1.5,
            "base_val_perplexity": 4.4817,
            "data": {"demonstrations": 42, "best_ranked": 0},
        }
        tuned = ModelVersion(
            kind=ModelKind.sft, name="sft-page-tuned", path=str(tmp_path / "t"), parent_id=base.id, metrics=metrics
        )
        s.add(tuned)
        s.flush()
        ids = (base.id, tuned.id)
    login(page, "sft-res", PASSWORD)
    page.goto("/models")
    row = page.locator(f'#sft-table tr[data-sft-id="{ids[1]}"]')
    assert row.locator('[data-label="val. loss"]').inner_text() == "1.250 (1.500)"
    assert row.locator('[data-label="perplexity"]').inner_text() == "3.49 (4.48)"
    assert row.locator('[data-label="demonstrations"]').inner_text() == "42"
    assert row.locator('[data-label="parent"]').inner_text() == f"{ids[0]} (sft-page-base)"
    assert page.locator(f'#sft-table tr[data-sft-id="{ids[0]}"] [data-label="val. loss"]').inner_text() == "— (—)"
