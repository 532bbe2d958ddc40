"""JSON API for agreement figures, screening decisions and comparison exports (researchers only)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from app.deps import CurrentResearcher, SessionDep, SessionsDep, SettingsDep
from app.models import Split
from app.schemas import UserRead
from app.schemas.agreement import (
    DisagreementRead,
    LabelerActionCreate,
    LabelerAgreementRead,
    LabelerDetailRead,
    MatrixRead,
    OverviewRead,
    ScreeningDecisionCreate,
    TaskAgreementRead,
    TaskKindRead,
)
from app.schemas.fields import QueryId, UtcMoment
from app.services import exports
from app.services import screening as screening_service
from app.services import users as user_service
from app.services.agreement import report

router = APIRouter(prefix="/api/v1", tags=["agreement"])


@router.get("/agreement/labelers", response_model=list[LabelerAgreementRead], name="api_agreement_labelers")
def labelers(
    session: SessionDep,
    settings: SettingsDep,
    _r: CurrentResearcher,
    limit: int | None = Query(None, ge=1, description="a page of this many labelers (by username); all if not given"),
    offset: int = Query(0, ge=0),
) -> list[LabelerAgreementRead]:
    return report.labeler_rows(session, settings=settings, limit=limit, offset=offset)


@router.get("/agreement/labelers/{user_id}", response_model=LabelerDetailRead, name="api_agreement_labeler")
def labeler(user_id: int, session: SessionDep, settings: SettingsDep, _r: CurrentResearcher) -> LabelerDetailRead:
    return report.labeler_detail(session, settings=settings, user=user_service.get_user(session, user_id=user_id))


@router.get("/agreement/overview", response_model=OverviewRead, name="api_agreement_overview")
def overview(session: SessionDep, _r: CurrentResearcher) -> OverviewRead:
    return report.overview(session)


@router.get("/agreement/tasks", response_model=list[TaskAgreementRead], name="api_agreement_tasks")
def tasks(
    session: SessionDep,
    _r: CurrentResearcher,
    min_labelers: int = Query(2, ge=2),
    limit: int | None = Query(None, ge=1, description="a page of this many tasks (lowest agreement first)"),
    offset: int = Query(0, ge=0),
) -> list[TaskAgreementRead]:
    return report.task_rows(session, min_labelers=min_labelers, limit=limit, offset=offset)


@router.get("/agreement/matrix", response_model=MatrixRead, name="api_agreement_matrix")
def matrix(session: SessionDep, _r: CurrentResearcher) -> MatrixRead:
    return report.matrix(session)


@router.get("/agreement/disagreements", response_model=list[DisagreementRead], name="api_agreement_disagreements")
def disagreements(
    session: SessionDep, _r: CurrentResearcher, limit: int = Query(20, ge=1, le=200)
) -> list[DisagreementRead]:
    return report.disagreement_queue(session, limit=limit)


@router.post("/users/{user_id}/screening-decision", response_model=UserRead, name="api_screening_decision")
def screening_decision(
    user_id: int, body: ScreeningDecisionCreate, session: SessionDep, researcher: CurrentResearcher
) -> UserRead:
    user = screening_service.decide(
        session, user_id=user_id, actor=researcher, approve=body.approve, reason=body.reason
    )
    return UserRead.model_validate(user)


@router.post("/users/{user_id}/labeler-action", response_model=UserRead, name="api_labeler_action")
def labeler_action(
    user_id: int, body: LabelerActionCreate, session: SessionDep, researcher: CurrentResearcher
) -> UserRead:
    user = screening_service.act_on_labeler_id(
        session, user_id=user_id, actor=researcher, action=body.action, reason=body.reason
    )
    return UserRead.model_validate(user)


@router.post("/tasks/{task_id}/promote-gold", response_model=TaskKindRead, name="api_promote_gold")
def promote_gold(task_id: int, session: SessionDep, researcher: CurrentResearcher) -> TaskKindRead:
    task = screening_service.promote_task_id(session, task_id=task_id, actor=researcher)
    return TaskKindRead(id=task.id, kind=task.kind)


@router.get(
    "/export/comparisons",
    response_class=StreamingResponse,
    response_model=None,
    name="api_export_comparisons",
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "one JSON object per line"}},
)
def export_comparisons(
    sessions: SessionsDep,
    settings: SettingsDep,
    _r: CurrentResearcher,
    format: Literal["pairs", "rankings"] = "pairs",
    active_only: bool = False,
    min_agreement: float | None = Query(None, ge=0, le=1),
    split: Split | None = None,
    exclude_flags: list[str] = Query(default_factory=list),
    model_versions: list[QueryId] = Query(default_factory=list, max_length=1000),
    since: UtcMoment | None = None,
    until: UtcMoment | None = None,
) -> StreamingResponse:
    # The body streams after this request's session has closed: the export reads with sessions of its own.
    lines = exports.export_lines(
        sessions,
        settings=settings,
        options=exports.ExportOptions(
            format=format,
            active_only=active_only,
            min_agreement=min_agreement,
            split=split,
            exclude_flags=tuple(exclude_flags),
            model_versions=tuple(model_versions) or None,
            since=since,
            until=until,
        ),
    )
    filename = f"ranklab-{format}.jsonl"
    return StreamingResponse(
        lines, media_type="application/x-ndjson", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )
