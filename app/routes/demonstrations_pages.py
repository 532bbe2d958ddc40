"""HTML for researchers: review demonstrations (accept, reject with a reason, edit), per-labeler figures, and
demonstration tasks made from the prompts page."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from app.config import Settings
from app.db import INT64_MAX
from app.deps import CurrentResearcher, SessionDep, SettingsDep
from app.errors import DomainError
from app.models import MAX_K, MAX_OVERLAP, DemonstrationOrigin, DemonstrationStatus, User
from app.services import demonstration_review as review_service
from app.services import demonstrations as demo_service
from app.services.conversations import turn_views
from app.services.demonstration_diff import rewrite_diff
from app.services.demonstration_review import ListedDemonstration, ReviewAction
from app.web import redirect_after_post, render

router = APIRouter(tags=["researcher pages"])
PAGE = 30
STATUS_LABELS = {"submitted": "pending review", "accepted": "accepted", "rejected": "rejected"}
DONE = {"accept": "accepted", "reject": "rejected", "edit": "edited and accepted"}


def _row(row: ListedDemonstration, request: Request) -> dict[str, object]:
    demo = row.demonstration
    rewritten = demo.origin == DemonstrationOrigin.rewritten and row.source_text is not None
    diff = rewrite_diff(row.source_text or "", demo.content) if rewritten else None
    return {
        "id": demo.id,
        "labeler": row.username,
        "task_kind": row.task_kind.value,
        "origin": "rewritten from a sampled output" if rewritten else "written from scratch",
        "status": demo.status.value,
        "status_label": STATUS_LABELS[demo.status.value],
        "turns": turn_views(row.prompt.messages),
        "content": demo.content,
        "original": demo.original_content,
        "reason": demo.review_reason,
        "at": f"{demo.created_at:%Y-%m-%d %H:%M}",
        "diff": diff,
        "similarity": f"{diff.similarity:.0%}" if diff else "",
        "pending": demo.status == DemonstrationStatus.submitted,
        "review_url": request.app.url_path_for("review_demonstration_form", demonstration_id=str(demo.id)),
    }


def _page_view(
    session: SessionDep, request: Request, status: str, labeler_id: int | None, offset: int
) -> dict[str, object]:
    shown = DemonstrationStatus(status) if status else None
    rows, total = review_service.list_demonstrations(
        session, status=shown, labeler_id=labeler_id, limit=PAGE, offset=offset
    )
    page = request.app.url_path_for("demonstrations_page")
    return {
        "status": status,
        "labeler_id": labeler_id or "",
        "statuses": [{"value": k, "label": v} for k, v in STATUS_LABELS.items()],
        "total": total,
        "rows": [_row(r, request) for r in rows],
        "stats": [
            {
                "username": s.username,
                "href": f"{page}?status={status}&labeler_id={s.labeler_id}",
                "submitted": s.submitted,
                "accepted": s.accepted,
                "rejected": s.rejected,
                "rewritten": s.rewritten,
                "rate": "—" if s.acceptance_rate is None else f"{s.acceptance_rate:.0%}",
                "interval": f"{s.interval[0]:.0%}–{s.interval[1]:.0%}" if s.interval else "",
                "seconds": "—" if s.median_seconds is None else f"{s.median_seconds:.0f} s",
            }
            for s in review_service.labeler_stats(session)
        ],
        "next_href": _href(page, status, labeler_id, offset + PAGE) if offset + PAGE < total else "",
        "prev_href": _href(page, status, labeler_id, max(0, offset - PAGE)) if offset else "",
    }


def _href(page: str, status: str, labeler_id: int | None, offset: int) -> str:
    query: dict[str, object] = {"status": status}
    query |= {"labeler_id": labeler_id} if labeler_id else {}
    query |= {"offset": offset} if offset else {}
    return f"{page}?{urlencode(query)}"


def task_demonstrations(session: SessionDep, request: Request, task_id: int) -> list[dict[str, object]]:
    """The demonstrations written for one demonstration task, as the review list shows them (for its task page)."""
    rows, _ = review_service.list_demonstrations(session, task_id=task_id, limit=100)
    return [_row(r, request) for r in rows]


@router.get("/demonstrations", response_class=HTMLResponse, name="demonstrations_page")
def demonstrations_page(
    request: Request,
    session: SessionDep,
    user: CurrentResearcher,
    status: Annotated[str, Query(pattern="^(|submitted|accepted|rejected)$")] = "submitted",
    labeler_id: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> Response:
    view = _page_view(session, request, status, labeler_id, offset)
    return render(request, "researcher/demonstrations.html", user=user, view=view)


@router.post("/demonstrations/{demonstration_id}/review", name="review_demonstration_form")
def review_demonstration(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentResearcher,
    demonstration_id: int,
    action: Annotated[ReviewAction, Form()],
    reason: Annotated[str, Form(max_length=review_service.MAX_REASON_CHARS)] = "",
    content: Annotated[str | None, Form(max_length=demo_service.MAX_DEMONSTRATION_CHARS)] = None,
    status: Annotated[str, Form(pattern="^(|submitted|accepted|rejected)$")] = "submitted",
    labeler_id: Annotated[int | None, Form(ge=1, le=INT64_MAX)] = None,
    back_to_task: Annotated[int | None, Form(ge=1, le=INT64_MAX)] = None,
) -> Response:
    """Review one demonstration, then back to the list as it was filtered (or to the task page it was reviewed on)."""
    if back_to_task is not None:
        back = str(request.app.url_path_for("task_detail_page", task_id=str(back_to_task)))
    else:
        back = _href(str(request.app.url_path_for("demonstrations_page")), status, labeler_id, 0)
    message = _review(session, settings, user, demonstration_id, action, reason, content)
    return redirect_after_post(request, f"{back}#demo-{demonstration_id}", message=message)


def _review(
    session: SessionDep,
    settings: Settings,
    user: User,
    demonstration_id: int,
    action: ReviewAction,
    reason: str,
    content: str | None,
) -> str:
    """The review done, said as a sentence; a refused review (no reason to reject, say) said as why."""
    try:
        with session.begin_nested():
            review_service.review(
                session,
                demonstration_id=demonstration_id,
                reviewer=user,
                action=action,
                reason=reason,
                content=content if action == "edit" else None,
                settings=settings,
            )
    except DomainError as exc:
        return f"Demonstration {demonstration_id} was not reviewed: {exc.message}"
    return f"Demonstration {demonstration_id} {DONE[action]}."


@router.post("/prompts/demonstration-tasks", name="prompts_demonstration_tasks")
def create_demonstration_tasks(
    request: Request,
    session: SessionDep,
    user: CurrentResearcher,
    prompt_id: Annotated[list[int] | None, Form()] = None,
    prompt_ids: Annotated[str, Form(max_length=100_000)] = "",
    starting_points: Annotated[int, Form(ge=0, le=MAX_K)] = 0,
    overlap: Annotated[int, Form(ge=1, le=MAX_OVERLAP)] = 1,
) -> Response:
    """Demonstration tasks for the prompts ticked on the prompts page and/or listed by id."""
    back = str(request.app.url_path_for("prompts_page"))
    try:
        ids = list(prompt_id or []) + demo_service.parse_prompt_ids(prompt_ids)
        with session.begin_nested():
            tasks = demo_service.create_demonstration_tasks(
                session, prompt_ids=ids, created_by=user, starting_points=starting_points, overlap=overlap
            )
    except DomainError as exc:
        return redirect_after_post(request, back, message=f"No demonstration task was created: {exc.message}")
    return redirect_after_post(request, back, message=f"Created {len(tasks)} demonstration task(s).")
