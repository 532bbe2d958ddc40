"""HTML dashboards for researchers: overview, labelers, one labeler, agreement matrix, disagreement queue."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.deps import CurrentResearcher, SessionDep, SettingsDep
from app.metrics import MIN_UNITS
from app.schemas.agreement import Interval, LabelerAgreementRead, MatrixRead, OverviewRead
from app.services import assignment as assignment_service
from app.services import prompts as prompt_service
from app.services import screening as screening_service
from app.services import users as user_service
from app.services.agreement import report
from app.services.conversations import turn_views
from app.web import excerpt, redirect_after_post, render

router = APIRouter(prefix="/dashboard", tags=["dashboards"])


def pct(x: float | None) -> str:
    """0.734 -> '73.4%'; None -> an em dash."""
    return "—" if x is None else f"{100 * x:.1f}%"


def interval(low: float | None, high: float | None, n: int = 0, *, units: str = "gold rankings") -> str:
    """'61–83%'; 'too few gold rankings' when n is under the minimum for an interval; '' when there is nothing."""
    if low is None or high is None:
        return f"too few {units}" if 0 < n < MIN_UNITS else ""
    return f"{100 * low:.0f}–{100 * high:.0f}%"


def _interval_view(i: Interval) -> dict[str, Any]:
    return {"value": pct(i.value), "n": i.n, "ci": interval(i.ci_low, i.ci_high, i.n, units="rankings")}


def pct_against(x: float | None, cutoff: float) -> str:
    """pct, with as many decimals as it takes for a figure under the cutoff not to read as the cutoff itself."""
    for decimals in (1, 2, 3):
        shown = "—" if x is None else f"{100 * x:.{decimals}f}%"
        if x is None or x >= cutoff or float(shown[:-1]) < 100 * cutoff:
            return shown
    return shown


def min_kappa(row: LabelerAgreementRead) -> str:
    """The lowest Cohen kappa over the flags someone used; kappa on a flag nobody set is 0/0 and says nothing."""
    used = [v for flag, v in row.flag_kappa.items() if v is not None and row.flag_used.get(flag, 0) > 0]
    if used:
        return f"{min(used):.2f}"
    return "no flags used" if row.flag_used else "—"


def position_bias(row: LabelerAgreementRead) -> str:
    """'62.0% vs 25.0% (n=40)': how often the first-shown output won, against chance, with its n."""
    if row.position_bias is None:
        return "—"
    few = " — too few to tell" if row.n_position < 10 else ""
    return f"{pct(row.position_bias)} vs {pct(row.position_chance)} (n={row.n_position}){few}"


def labeler_view(row: LabelerAgreementRead, request: Request, cutoff: float) -> dict[str, Any]:
    """Formatted figures and action links for one labeler row."""
    return {
        "id": row.user_id,
        "username": row.username,
        "status": row.status.value.replace("_", " "),
        "alert": row.gold_alert,
        "href": request.app.url_path_for("dashboard_labeler", user_id=str(row.user_id)),
        "action_url": request.app.url_path_for("dashboard_labeler_action", user_id=str(row.user_id)),
        "actions": screening_service.allowed_actions(row.status),
        "rankings": row.n_rankings,
        "gold": pct(row.agreement_with_researchers),
        "n_gold": row.n_gold,
        "gold_ci": interval(row.ci_low, row.ci_high, row.n_gold),
        "tied": pct(row.tied_share),
        "peers": pct(row.agreement_with_labelers),
        "n_overlap": row.n_overlap,
        "peers_ci": interval(row.labelers_ci_low, row.labelers_ci_high, row.n_overlap, units="shared rankings"),
        "flags": pct(row.flag_agreement),
        "kappa": min_kappa(row),
        "seconds": "—" if row.median_seconds is None else f"{row.median_seconds:.0f}",
        "bias": position_bias(row),
        "rolling": pct_against(row.rolling_gold_agreement, cutoff),
        "flag_rows": [
            {
                "flag": flag.replace("_", " "),
                "percent": pct(percent),
                "kappa": "—"
                if row.flag_kappa.get(flag) is None
                else "nobody set it"
                if row.flag_used.get(flag, 0) == 0
                else f"{row.flag_kappa[flag]:.2f}",
            }
            for flag, percent in row.flag_percent_agreement.items()
            if percent is not None
        ],
    }


def overview_charts(ov: OverviewRead) -> dict[str, Any]:
    """Chart.js data for the overview: throughput and agreement per day."""
    days = [d.day.isoformat() for d in ov.series]
    return {
        "throughput": {"type": "bar", "labels": days, "series": {"rankings": [d.rankings for d in ov.series]}},
        "agreement": {
            "type": "line",
            "labels": days,
            "percent": True,
            "series": {
                "with researchers": [d.agreement_with_researchers for d in ov.series],
                "between labelers": [d.inter_labeler for d in ov.series],
            },
        },
    }


def matrix_view(m: MatrixRead) -> dict[str, Any]:
    """Matrix cells with a shade class by agreement band."""

    def shade(x: float | None) -> str:
        return "none" if x is None else ("high" if x >= 0.75 else "mid" if x >= 0.6 else "low")

    return {
        "researchers": [r.username for r in m.researchers],
        "rows": [
            {
                "username": r.username,
                "role": r.role.value,
                "cells": [{"value": pct(c.agreement), "n": c.n, "shade": shade(c.agreement)} for c in r.cells],
            }
            for r in m.rows
        ],
    }


@router.get("", response_class=HTMLResponse, name="dashboard_overview")
def overview_page(request: Request, session: SessionDep, user: CurrentResearcher) -> Response:
    ov = report.overview(session)
    view = {
        "labelers_by_status": sorted(ov.labelers_by_status.items()),
        "tasks_by_kind": sorted(ov.tasks_by_kind.items()),
        "open_tasks": ov.open_tasks,
        "rankings": ov.rankings,
        "comparisons": ov.comparisons,
        "gold": _interval_view(ov.agreement_with_researchers),
        "peers": _interval_view(ov.inter_labeler),
        "researchers": _interval_view(ov.researcher_agreement),
        "alpha": "—" if ov.mean_task_alpha is None else f"{ov.mean_task_alpha:.2f}",
        "export_pairs": request.app.url_path_for("api_export_comparisons") + "?format=pairs",
        "export_rankings": request.app.url_path_for("api_export_comparisons") + "?format=rankings",
    }
    return render(request, "dashboard/overview.html", user=user, view=view, charts=overview_charts(ov))


LABELERS_PER_PAGE = 100
"""Rows of the labelers table per page (each page reads only its own rows of the aggregates)."""


@router.get("/labelers", response_class=HTMLResponse, name="dashboard_labelers")
def labelers_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentResearcher,
    page: int = Query(1, ge=1, le=1_000_000),
) -> Response:
    offset = (page - 1) * LABELERS_PER_PAGE
    rows = report.labeler_rows(session, settings=settings, limit=LABELERS_PER_PAGE, offset=offset)
    pager = page_links(request, page=page, total=report.labeler_count(session), per_page=LABELERS_PER_PAGE)
    charts = {
        "labelers": {
            "type": "bar",
            "labels": [r.username for r in rows],
            "percent": True,
            "series": {
                "with researchers": [r.agreement_with_researchers for r in rows],
                "with labelers": [r.agreement_with_labelers for r in rows],
            },
            "errors": {
                "with researchers": [[r.ci_low, r.ci_high] for r in rows],
                "with labelers": [[r.labelers_ci_low, r.labelers_ci_high] for r in rows],
            },
        }
    }
    cutoff = settings.screening_cutoff
    view = {"rows": [labeler_view(r, request, cutoff) for r in rows], "cutoff": pct(cutoff), "pager": pager}
    return render(request, "dashboard/labelers.html", user=user, view=view, charts=charts)


def page_links(request: Request, *, page: int, total: int, per_page: int) -> dict[str, Any]:
    """'101–200 of 10,000' with links to the previous and next pages (None at the ends)."""
    base = request.app.url_path_for("dashboard_labelers")
    first, last = (page - 1) * per_page + 1, min(page * per_page, total)
    return {
        "text": f"{first:,}–{last:,} of {total:,}" if first <= total else f"none of {total:,} on page {page}",
        "previous": f"{base}?page={page - 1}" if page > 1 else None,
        "next": f"{base}?page={page + 1}" if page * per_page < total else None,
    }


@router.get("/labelers/{user_id}", response_class=HTMLResponse, name="dashboard_labeler")
def labeler_page(
    user_id: int, request: Request, session: SessionDep, settings: SettingsDep, user: CurrentResearcher
) -> Response:
    detail = report.labeler_detail(session, settings=settings, user=user_service.get_user(session, user_id=user_id))
    tasks = list(reversed(detail.tasks))
    turns = prompt_service.task_conversations(session, task_ids=[t.task_id for t in detail.tasks])
    charts = {
        "history": {
            "type": "line",
            "labels": [t.ranked_at.strftime("%Y-%m-%d %H:%M") for t in tasks],
            "percent": True,
            "series": {"agreement with researchers": [t.agreement for t in tasks]},
        }
    }
    view = {
        "labeler": labeler_view(detail.labeler, request, settings.screening_cutoff),
        "tasks": [
            {
                "id": t.task_id,
                "kind": t.kind.value,
                "prompt": excerpt(t.prompt, 300),
                "turns": turn_views(turns.get(t.task_id) or [{"role": "user", "content": t.prompt}]),
                "agreement": pct(t.agreement),
                "mine": t.mine.buckets,
                "gold": [(g.username, g.buckets) for g in t.gold],
            }
            for t in detail.tasks
        ],
    }
    return render(request, "dashboard/labeler.html", user=user, view=view, charts=charts)


@router.get("/matrix", response_class=HTMLResponse, name="dashboard_matrix")
def matrix_page(request: Request, session: SessionDep, user: CurrentResearcher) -> Response:
    return render(request, "dashboard/matrix.html", user=user, view=matrix_view(report.matrix(session)), charts={})


@router.get("/disagreements", response_class=HTMLResponse, name="dashboard_disagreements")
def disagreements_page(request: Request, session: SessionDep, user: CurrentResearcher) -> Response:
    queue = report.disagreement_queue(session, limit=30)
    turns = prompt_service.task_conversations(session, task_ids=[t.task_id for t in queue])
    charts = {
        "queue": {
            "type": "bar",
            "labels": [f"task {t.task_id}" for t in queue],
            "percent": True,
            "series": {"agreement among rankings": [t.agreement for t in queue]},
        }
    }
    view = [
        {
            "id": t.task_id,
            "kind": t.kind.value,
            "prompt": excerpt(t.prompt, 600),
            "turns": turn_views(turns.get(t.task_id) or [{"role": "user", "content": t.prompt}]),
            "completions": [(chr(ord("A") + i), excerpt(text, 400)) for i, text in enumerate(t.completions)],
            "task_url": request.app.url_path_for("task_detail_page", task_id=str(t.task_id)),
            "agreement": pct(t.agreement),
            "alpha": "—" if t.alpha is None else f"{t.alpha:.2f}",
            "rankings": [(r.username, r.by_researcher, r.buckets) for r in t.rankings],
            "promote_url": request.app.url_path_for("dashboard_promote", task_id=str(t.task_id)),
            "can_promote": screening_service.can_promote_to_gold(t.kind),
            "adjudicate_url": request.app.url_path_for("dashboard_adjudicate", task_id=str(t.task_id)),
            "adjudicated": any(r.by_researcher for r in t.rankings),
        }
        for t in queue
    ]
    return render(request, "dashboard/disagreements.html", user=user, view=view, charts=charts)


@router.post("/labelers/{user_id}/action", name="dashboard_labeler_action")
def labeler_action(
    user_id: int,
    request: Request,
    session: SessionDep,
    user: CurrentResearcher,
    action: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "",
) -> RedirectResponse:
    done = screening_service.act_on_labeler_id(session, user_id=user_id, actor=user, action=action, reason=reason)  # type: ignore[arg-type]
    status = done.status.value.replace("_", " ")
    url = f"{request.app.url_path_for('dashboard_labelers')}#labeler-{user_id}"
    return redirect_after_post(request, url, message=f"{done.username}: {action} done; their account is now {status}.")


@router.post("/tasks/{task_id}/adjudicate", name="dashboard_adjudicate")
def adjudicate(
    task_id: int, request: Request, session: SessionDep, settings: SettingsDep, user: CurrentResearcher
) -> RedirectResponse:
    """Rank a disputed task yourself: it becomes gold and is your next task on the ranking page."""
    assignment_service.adjudicate(session, task_id=task_id, researcher=user, settings=settings)
    return RedirectResponse(request.app.url_path_for("labeling_page"), status_code=303)


@router.post("/tasks/{task_id}/promote", name="dashboard_promote")
def promote(
    task_id: int, request: Request, session: SessionDep, user: CurrentResearcher, back: Annotated[str, Form()] = ""
) -> RedirectResponse:
    screening_service.promote_task_id(session, task_id=task_id, actor=user)
    safe = back.startswith("/") and not back.startswith("//") and "#" not in back
    url = back if safe else f"{request.app.url_path_for('dashboard_disagreements')}#task-{task_id}"
    message = (
        f"Task {task_id} is a gold task now: researchers are served it to rank, and once one has, labelers get it "
        "as a hidden check."
    )
    return redirect_after_post(request, url, message=message)
