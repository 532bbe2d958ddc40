"""HTML: the ranking page and the versioned guidelines page."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.config import Settings
from app.deps import CurrentResearcher, CurrentUser, SessionDep, SettingsDep, may_rank
from app.models import FLAGS, Role, User, UserStatus
from app.services import guidelines as guideline_service
from app.services import rankings as ranking_service
from app.services import screening as screening_service
from app.services.screening_demonstrations import demonstration_screening
from app.web import render

router = APIRouter(tags=["labeling pages"])

FLAG_KEYS = {
    "fails_instruction": ("f", "fails to follow the instruction"),
    "inappropriate_for_assistant": ("i", "inappropriate for a customer assistant"),
    "hallucination": ("h", "hallucination"),
    "satisfies_constraint": ("c", "satisfies the constraint in the instruction"),
    "sexual_content": ("s", "sexual content"),
    "violent_content": ("v", "violent content"),
    "encourages_harm": ("e", "encourages or fails to discourage violence, abuse, terrorism or self-harm"),
    "denigrates_protected_class": ("d", "denigrates a protected class"),
    "harmful_advice": ("a", "gives harmful advice"),
    "expresses_opinion": ("o", "expresses an opinion"),
    "moral_judgment": ("m", "expresses a moral judgment"),
}
"""Keyboard key and human label of every flag (keys avoid j/k/t/n, which move, tie and mark not rankable)."""
SKIP_REASONS = [
    "I cannot judge this subject",
    "Not in a language I read well",
    "The prompt is broken or unclear",
    "The outputs are too long to read now",
    "Content I would rather not read",
]
"""The common reasons the skip dialog offers (free text stays possible)."""
FLAG_VIEW = [{"name": f, "key": FLAG_KEYS[f][0], "label": FLAG_KEYS[f][1]} for f in FLAGS]


@router.get("/label", response_class=HTMLResponse, name="labeling_page")
def labeling_page(request: Request, session: SessionDep, settings: SettingsDep, labeler: CurrentUser) -> Response:
    if not may_rank(labeler):  # screening ended under review, paused...: a page that says so, with the menu
        guidelines = request.app.url_path_for("guidelines_page") if guideline_service.current_version(session) else ""
        view = not_now_view(session, labeler, guidelines_url=str(guidelines))
        return render(request, "labeling/not_now.html", user=labeler, view=view)
    app = request.app
    view = {
        "next_url": app.url_path_for("api_next_task"),
        "submit_url_template": app.url_path_for("api_submit_ranking", assignment_id="0").replace("/0/", "/{id}/"),
        "skip_url_template": app.url_path_for("api_skip_assignment", assignment_id="0").replace("/0/", "/{id}/"),
        "lease_url_template": app.url_path_for("api_renew_lease", assignment_id="0").replace("/0/", "/{id}/"),
        "login_url": f"{app.url_path_for('login_page')}?{urlencode({'next': app.url_path_for('labeling_page')})}",
        "history_url": app.url_path_for("api_my_rankings"),
        "ranking_url_template": app.url_path_for("api_my_ranking", ranking_id="0").replace("/0", "/{id}"),
        "demo_submit_url_template": _template(app, "api_submit_demonstration", assignment_id="0"),
        "demo_revise_url_template": _template(app, "api_revise_demo", demonstration_id="0"),
        "demo_history_url": app.url_path_for("api_my_demonstrations"),
        "revision_minutes": settings.revision_minutes,
        "guidelines_url": app.url_path_for("guidelines_page"),
        "guideline_version": guideline_service.current_version(session),
        "submitted_today": ranking_service.submitted_today(session, labeler=labeler),
        "screening": _screening_view(session, labeler, settings),
        "skip_reasons": SKIP_REASONS,
        "flags": FLAG_VIEW,
        "flag_keys_json": json.dumps(FLAG_VIEW),
    }
    return render(request, "labeling/rank.html", user=labeler, view=view)


def _template(app: Any, name: str, **zero: str) -> str:
    """A route's path with its one id as ``{id}``, for the page's script to fill in."""
    path = str(app.url_path_for(name, **zero))
    head, _, tail = path.rpartition("/0")
    return f"{head}/{{id}}{tail}"


NOT_NOW = {
    UserStatus.pending_review: (
        "Your screening is under review",
        "You have ranked every screening task. Your rankings did not agree closely enough with the researchers' to "
        "start straight away, so a researcher is reviewing your answers. You can rank again once they approve you; "
        "until then there is nothing to rank here.",
    ),
    UserStatus.paused: ("Your account is paused", "A researcher paused your account and will get back to you."),
}
"""What the ranking page says to a labeler who may not rank now, by status (others: the generic sentence)."""


def not_now_view(session: SessionDep, user: User, *, guidelines_url: str) -> dict[str, object]:
    """Title and sentences for a labeler who may not rank now (no task tools, no progress counter)."""
    status = user.status.value.replace("_", " ")
    title, text = NOT_NOW.get(user.status, (f"Your account is {status}", "A researcher will get back to you."))
    done = screening_service.screening_rankings_done(session, user=user) if user.role == Role.labeler else 0
    return {
        "title": title,
        "text": text,
        "screened": f"Screening tasks you ranked: {done}." if done else "",
        "guidelines_url": guidelines_url,
    }


def _screening_view(session: SessionDep, labeler: User, settings: Settings) -> dict[str, int] | None:
    """Progress through the screening set, for a labeler still in screening."""
    if labeler.role != Role.labeler or labeler.status != UserStatus.screening:
        return None
    done = screening_service.screening_rankings_done(session, user=labeler)
    demos = demonstration_screening(session, settings=settings, user=labeler)
    return {"done": done, "total": settings.screening_set_size, "cutoff": round(settings.screening_cutoff * 100),
            "demos_written": min(demos.written, demos.required), "demos_required": demos.required}  # fmt: skip


@router.get("/guidelines", response_class=HTMLResponse, name="guidelines_page")
def guidelines_page(request: Request, session: SessionDep, user: CurrentUser, version: int | None = None) -> Response:
    shown = guideline_service.get_guideline(session, version=version)
    view = {
        "version": shown.version if shown else None,
        "html": guideline_service.render_markdown(shown.body) if shown else None,
        "body": shown.body if shown else "",
        "created_at": f"{shown.created_at:%Y-%m-%d %H:%M} UTC" if shown else "",
        "versions": [
            {"version": g.version, "href": f"{request.url.path}?version={g.version}"}
            for g in guideline_service.list_versions(session)
        ],
        "can_edit": user.role in (Role.researcher, Role.admin),
    }
    return render(request, "labeling/guidelines.html", user=user, view=view)


@router.post("/guidelines", name="publish_guidelines")
def publish_guidelines(
    request: Request, session: SessionDep, researcher: CurrentResearcher, body: Annotated[str, Form()]
) -> Response:
    guideline_service.publish_guideline(session, body=body, author=researcher)
    return RedirectResponse(request.app.url_path_for("guidelines_page"), status_code=303)
