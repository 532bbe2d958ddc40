"""Demonstrations made through the services, for the browser tests of the pages that show them."""

from __future__ import annotations

from app.models import Demonstration, Role, TaskType, User, UserStatus
from app.services import assignment as assignment_service
from app.services import demonstrations as demo_service
from app.services import users as user_service
from app.services.prompts import get_or_create_prompt
from app.services.tasks import NewCompletion, create_task

PASSWORD = "browser-pass-123"


def labeler(s, username: str) -> User:  # type: ignore[no-untyped-def]
    return user_service.create_user(
        s, username=username, password=PASSWORD, role=Role.labeler, status=UserStatus.active
    )


def write(
    s, settings, author: User, *, messages, content: str, outputs=(), rewrite: int | None = None
) -> Demonstration:  # type: ignore[no-untyped-def]
    """A demonstration task on `messages` (offering `outputs` to rewrite) answered by `author`: from scratch, or
    rewriting output number `rewrite`. Call it with no other open task (tests.browser.conftest.only_new_tasks)."""
    prompt, _ = get_or_create_prompt(s, messages=messages)
    if outputs:
        sampled = create_task(s, prompt=prompt, completions=[NewCompletion(text=t) for t in outputs])
        sampled.status = "archived"
    demo_service.create_demonstration_tasks(s, prompt_ids=[prompt.id], created_by=None, starting_points=len(outputs))
    got = assignment_service.next_assignment_view(
        s, labeler=author, settings=settings, task_type=TaskType.demonstration
    )
    assert got is not None
    assignment, view = got
    source = assignment.display_order[rewrite] if rewrite is not None else None
    submission = demo_service.DemonstrationSubmission(
        content=content, idempotency_key=f"seed-{assignment.id}", source_completion_id=source
    )
    demo, _ = demo_service.submit_demonstration(
        s, labeler=author, assignment_id=assignment.id, submission=submission, settings=settings
    )
    return demo
