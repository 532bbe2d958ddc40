"""HTML for researchers: prompts and tasks (list, search, upload), and the rankings a task received."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from app.db import INT64_MAX
from app.deps import CurrentResearcher, SessionDep
from app.errors import DomainError
from app.models import Split, TaskKind, TaskStatus, TaskType, User
from app.routes.demonstrations_pages import task_demonstrations
from app.services import imports as import_service
from app.services import prompts as prompt_service
from app.services import rankings as ranking_service
from app.services import revisions as revision_service
from app.services import screening as screening_service
from app.services import tasks as task_service
from app.services.conversations import turn_views
from app.web import excerpt, redirect_after_post, render

router = APIRouter(tags=["researcher pages"])
PAGE = 50


def _prompts_view(session: SessionDep, q: str, split: Split | None, offset: int) -> dict[str, object]:
    rows, total = prompt_service.search_prompts(session, query=q, split=split, limit=PAGE, offset=offset)
    return {
        "q": q,
        "split": split.value if split else "",
        "splits": [s.value for s in Split],
        "total": total,
        "rows": [
            {"id": p.id, "text": excerpt(p.text, 300), "split": p.split.value, "source": p.source.value} for p in rows
        ],
        "next_offset": offset + PAGE if offset + PAGE < total else None,
        "prev_offset": max(0, offset - PAGE) if offset else None,
    }


@router.get("/prompts", response_class=HTMLResponse, name="prompts_page")
def prompts_page(
    request: Request,
    session: SessionDep,
    user: CurrentResearcher,
    q: str = "",
    split: Split | None = None,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> Response:
    return render(request, "researcher/prompts.html", user=user, view=_prompts_view(session, q, split, offset))


@router.post("/prompts/upload", response_class=HTMLResponse, name="upload_prompts")
def upload_prompts(
    request: Request,
    session: SessionDep,
    user: CurrentResearcher,
    file: Annotated[UploadFile, File()],
    split_ratio: Annotated[str, Form()] = "",
) -> Response:
    try:
        with session.begin_nested():
            ratios = prompt_service.parse_split_ratios(split_ratio) if split_ratio.strip() else None
            result = import_service.import_prompts_file(
                session, data=file.file.read(), filename=file.filename or "", created_by=user, split_ratios=ratios
            )
    except DomainError as exc:
        view = {**_prompts_view(session, "", None, 0), "error": exc.message}
        return render(request, "researcher/prompts.html", user=user, view=view, status_code=422)
    done = f"Imported {result.created} new prompt(s); {result.duplicates} duplicate(s) skipped."
    return redirect_after_post(request, str(request.app.url_path_for("prompts_page")), message=done)


def _tasks_view(
    session: SessionDep, q: str, kind: TaskKind | None, status: TaskStatus | None, offset: int
) -> dict[str, object]:
    rows, total = task_service.list_tasks(session, kind=kind, status=status, query=q, limit=PAGE, offset=offset)
    return {
        "q": q,
        "kind": kind.value if kind else "",
        "status": status.value if status else "",
        "kinds": [k.value for k in TaskKind],
        "statuses": [s.value for s in TaskStatus],
        "total": total,
        "rows": [
            {
                "id": t.id,
                "prompt": excerpt(p.text, 200),
                "kind": t.kind.value,
                "status": t.status.value,
                "k": t.k,
                "progress": f"{n}/{t.overlap}",
                "slots": t.slots_taken,
            }
            for t, p, n in rows
        ],
        "next_offset": offset + PAGE if offset + PAGE < total else None,
        "prev_offset": max(0, offset - PAGE) if offset else None,
    }


@router.get("/tasks", response_class=HTMLResponse, name="tasks_page")
def tasks_page(
    request: Request,
    session: SessionDep,
    user: CurrentResearcher,
    q: str = "",
    kind: TaskKind | None = None,
    status: TaskStatus | None = None,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> Response:
    return render(request, "researcher/tasks.html", user=user, view=_tasks_view(session, q, kind, status, offset))


@router.post("/tasks/upload", response_class=HTMLResponse, name="upload_tasks")
def upload_tasks(
    request: Request, session: SessionDep, user: CurrentResearcher, file: Annotated[UploadFile, File()]
) -> Response:
    try:
        with session.begin_nested():
            ids = import_service.import_tasks_file(session, data=file.file.read(), created_by=user)
    except DomainError as exc:
        view = {**_tasks_view(session, "", None, None, 0), "error": exc.message}
        return render(request, "researcher/tasks.html", user=user, view=view, status_code=422)
    url = str(request.app.url_path_for("tasks_page"))
    return redirect_after_post(request, url, message=f"Imported {len(ids)} task(s).")


@router.get("/tasks/{task_id}", response_class=HTMLResponse, name="task_detail_page")
def task_detail_page(request: Request, session: SessionDep, user: CurrentResearcher, task_id: int) -> Response:
    view = _task_view(session, task_id, user)
    if view["task_type"] == TaskType.demonstration.value:
        view["demonstrations"] = task_demonstrations(session, request, task_id)
    view["promote_url"] = request.app.url_path_for("dashboard_promote", task_id=str(task_id))
    view["rank_url"] = request.app.url_path_for("dashboard_adjudicate", task_id=str(task_id))
    return render(request, "researcher/task_detail.html", user=user, view=view)


def their_letters(shown: list[int], label: dict[int, str]) -> str:
    """'their A = C, their B = A, ...': the letters one labeler saw (their shuffle) in this page's letters, so a note
    citing "output D" can be read; '' when they saw this page's order."""
    pairs = [("ABCDEFGHI"[i], label[cid]) for i, cid in enumerate(shown) if cid in label]
    if all(theirs == ours for theirs, ours in pairs):
        return ""
    return ", ".join(f"their {theirs} = {ours}" for theirs, ours in pairs)


def _task_view(session: SessionDep, task_id: int, user: User) -> dict[str, object]:
    task = task_service.get_task(session, task_id=task_id)
    label = {item.completion_id: "ABCDEFGHI"[i] for i, item in enumerate(task.items)}
    rankings = []
    found = ranking_service.rankings_for_task(session, task_id=task_id)
    seen = revision_service.display_orders(session, rankings=[r for r, _ in found])
    for ranking, username in found:
        flags = {i.completion_id: i.flags for i in ranking.items}
        ratings = {i.completion_id: i.rating for i in ranking.items}
        rankings.append(
            {
                "id": ranking.id,
                "who": username + (" (researcher)" if ranking.by_researcher else ""),
                "order": " > ".join(" = ".join(label[c] for c in bucket) for bucket in ranking.buckets)
                or "not rankable",
                "not_rankable": ranking.not_rankable,
                "ratings": ", ".join(f"{label[c]}: {r}" for c, r in ratings.items() if r is not None),
                "flags": "; ".join(f"{label[c]}: {', '.join(f)}" for c, f in flags.items() if f),
                "note": ranking.note,
                "their_letters": their_letters(seen[ranking.id], label),
                "seconds": round((ranking.time_spent_ms or 0) / 1000, 1),
                "guideline_version": f"v{ranking.guideline_version}" if ranking.guideline_version else "—",
                "at": f"{ranking.created_at:%Y-%m-%d %H:%M}",
            }
        )
    prompt = prompt_service.get_prompt(session, prompt_id=task.prompt_id)
    return {
        "id": task.id,
        "prompt": prompt.text,
        "turns": turn_views(prompt.messages),
        "kind": task.kind.value,
        "task_type": task.task_type.value,
        "status": task.status.value,
        "overlap": task.overlap,
        "slots": task.slots_taken,
        "completions": [
            {
                "label": label[i.completion_id],
                "id": i.completion_id,
                "text": i.completion.text,
                "model": i.completion.model_name,
            }
            for i in task.items
        ],
        "rankings": rankings,
        "can_promote": screening_service.can_promote_to_gold(task.kind),
        "can_rank_gold": screening_service.needs_gold_answer_from(session, task=task, researcher=user),
        "back": f"/tasks/{task.id}",
    }
