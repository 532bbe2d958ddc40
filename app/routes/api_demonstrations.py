"""JSON API for demonstrations: researchers create tasks, review and export; labelers write, list and revise theirs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, StreamingResponse

from app.db import INT64_MAX
from app.deps import CurrentLabeler, CurrentResearcher, SessionDep, SessionsDep, SettingsDep
from app.errors import NotFound
from app.models import Demonstration, DemonstrationStatus, Split, TaskKind, UserStatus
from app.schemas.demonstrations import (
    DemonstrationDetail,
    DemonstrationPage,
    DemonstrationRead,
    DemonstrationReview,
    DemonstrationRevise,
    DemonstrationSubmit,
    DemonstrationTasksCreate,
    DemonstrationTasksCreated,
    LabelerDemonstrationsRead,
    OwnDemonstrationRead,
)
from app.services import demonstration_review as review_service
from app.services import demonstrations as demo_service
from app.services import sft_export
from app.services.demonstration_review import ListedDemonstration
from app.services.screening_demonstrations import demonstration_screening

router = APIRouter(prefix="/api/v1", tags=["demonstrations"])


@router.post(
    "/demonstrations/tasks", response_model=DemonstrationTasksCreated, status_code=201, name="api_demonstration_tasks"
)
def create_tasks(
    body: DemonstrationTasksCreate, session: SessionDep, researcher: CurrentResearcher
) -> DemonstrationTasksCreated:
    """One demonstration task per prompt: labelers write the assistant's answer (or rewrite a sampled output)."""
    tasks = demo_service.create_demonstration_tasks(
        session,
        prompt_ids=body.prompt_ids,
        created_by=researcher,
        kind=TaskKind(body.kind),
        overlap=body.overlap,
        starting_points=body.starting_points,
        priority=body.priority,
    )
    return DemonstrationTasksCreated(created=len(tasks), task_ids=[t.id for t in tasks])


@router.post(
    "/labeling/assignments/{assignment_id}/demonstration",
    response_model=DemonstrationRead,
    status_code=201,
    name="api_submit_demonstration",
    responses={200: {"description": "replay of an already stored demonstration"}},
)
def submit(
    assignment_id: int, body: DemonstrationSubmit, session: SessionDep, settings: SettingsDep, labeler: CurrentLabeler
) -> DemonstrationRead | JSONResponse:
    demo, replayed = demo_service.submit_demonstration(
        session,
        labeler=labeler,
        assignment_id=assignment_id,
        submission=demo_service.DemonstrationSubmission(**body.model_dump()),
        settings=settings,
    )
    read = demonstration_read(demo)
    if labeler.status == UserStatus.screening:
        written = demonstration_screening(session, settings=settings, user=labeler).written
        read.screening_demonstrations_written = written
    return JSONResponse(read.model_dump(mode="json"), status_code=200) if replayed else read


@router.get("/labeling/demonstrations", response_model=list[OwnDemonstrationRead], name="api_my_demonstrations")
def mine(
    session: SessionDep, settings: SettingsDep, labeler: CurrentLabeler, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> list[OwnDemonstrationRead]:
    """The caller's newest demonstrations, their review status and how long each can still be revised."""
    window = timedelta(minutes=settings.revision_minutes)
    rows = demo_service.recent_demonstrations(session, labeler=labeler, window=window, limit=limit)
    return [
        OwnDemonstrationRead(
            id=r.demonstration.id,
            task_id=r.demonstration.task_id,
            prompt_excerpt=r.prompt_text[:160],
            messages=r.prompt_messages,  # type: ignore[arg-type]
            content=r.demonstration.content,
            source_completion_id=r.demonstration.source_completion_id,
            status=r.demonstration.status,
            review_reason=r.demonstration.review_reason,
            created_at=r.demonstration.created_at,
            revisable_until=r.revisable_until,
        )
        for r in rows
    ]


@router.put("/labeling/demonstrations/{demonstration_id}", response_model=DemonstrationRead, name="api_revise_demo")
def revise(
    demonstration_id: int,
    body: DemonstrationRevise,
    session: SessionDep,
    settings: SettingsDep,
    labeler: CurrentLabeler,
) -> DemonstrationRead:
    """Correct one's own demonstration within the revision window, before it is reviewed."""
    demo = demo_service.revise_demonstration(
        session,
        labeler=labeler,
        demonstration_id=demonstration_id,
        content=body.content,
        source_completion_id=body.source_completion_id,
        window=timedelta(minutes=settings.revision_minutes),
    )
    return demonstration_read(demo)


@router.get("/demonstrations", response_model=DemonstrationPage, name="api_list_demonstrations")
def list_demonstrations(
    session: SessionDep,
    _r: CurrentResearcher,
    status: DemonstrationStatus | None = None,
    labeler_id: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> DemonstrationPage:
    """Demonstrations to review (status=submitted, oldest first) or reviewed ones (newest first)."""
    rows, total = review_service.list_demonstrations(
        session, status=status, labeler_id=labeler_id, limit=limit, offset=offset
    )
    return DemonstrationPage(total=total, items=[demonstration_detail(row) for row in rows])


@router.get("/demonstrations/stats", response_model=list[LabelerDemonstrationsRead], name="api_demonstration_stats")
def stats(session: SessionDep, _r: CurrentResearcher) -> list[LabelerDemonstrationsRead]:
    """Per labeler: demonstrations written, accepted, rejected, rewritten, acceptance rate (95% interval), time."""
    return [
        LabelerDemonstrationsRead(**{**vars(s), "acceptance_interval": s.interval})
        for s in review_service.labeler_stats(session)
    ]


@router.get("/demonstrations/{demonstration_id:int}", response_model=DemonstrationDetail, name="api_get_demonstration")
def get_one(demonstration_id: int, session: SessionDep, _r: CurrentResearcher) -> DemonstrationDetail:
    rows, _ = review_service.list_demonstrations(session, limit=1, only_id=demonstration_id)
    if not rows:
        raise NotFound(f"no demonstration with id {demonstration_id}")
    return demonstration_detail(rows[0])


@router.post(
    "/demonstrations/{demonstration_id:int}/review", response_model=DemonstrationRead, name="api_review_demonstration"
)
def review(
    demonstration_id: int,
    body: DemonstrationReview,
    session: SessionDep,
    settings: SettingsDep,
    researcher: CurrentResearcher,
) -> DemonstrationRead:
    """Accept, reject (with a reason) or edit-and-accept; only accepted demonstrations train (`train_sft`)."""
    demo = review_service.review(
        session,
        demonstration_id=demonstration_id,
        reviewer=researcher,
        action=body.action,
        reason=body.reason,
        content=body.content,
        settings=settings,
    )
    return demonstration_read(demo)


@router.get(
    "/export/demonstrations",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "TRL `messages` JSON lines"}},
    name="api_export_demonstrations",
)
def export(
    sessions: SessionsDep,
    settings: SettingsDep,
    _r: CurrentResearcher,
    active_only: bool = True,
    split: Split | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    include_best_ranked: bool = False,
) -> StreamingResponse:
    """Accepted demonstrations in TRL's `messages` format with provenance (the SFT export)."""
    options = sft_export.SftOptions(
        active_only=active_only, split=split, since=since, until=until, include_best_ranked=include_best_ranked
    )
    lines = sft_export.sft_lines(sessions, settings=settings, options=options)
    return StreamingResponse(
        lines,
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="ranklab-sft.jsonl"'},
    )


def demonstration_read(demo: Demonstration) -> DemonstrationRead:
    """The API view of a stored demonstration."""
    return DemonstrationRead.model_validate(demo, from_attributes=True)


def demonstration_detail(row: ListedDemonstration) -> DemonstrationDetail:
    """A listed demonstration with its conversation, author and source output."""
    return DemonstrationDetail(
        **demonstration_read(row.demonstration).model_dump(),
        messages=row.prompt.messages,  # type: ignore[arg-type]
        labeler=row.username,
        task_kind=row.task_kind,
        source_completion_text=row.source_text,
    )
