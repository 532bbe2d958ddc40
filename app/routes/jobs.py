"""Jobs, schedules and model registry JSON API (researchers); the pages are in app.routes.jobs_pages."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse

from app.deps import CurrentResearcher, SessionDep, SettingsDep
from app.models import JobKind, JobStatus, ModelKind
from app.schemas.jobs import (
    JobCreate,
    JobRead,
    ModelVersionRead,
    ScheduleCreate,
    ScheduleRead,
    ScheduleUpdate,
    StorageRead,
    WorkerRead,
)
from app.services import jobs as job_service
from app.services import model_registry
from app.services import schedules as schedule_service
from app.services import storage as storage_service
from app.services import workers as worker_service

router = APIRouter(prefix="/api/v1", tags=["jobs"])


@router.post("/jobs", response_model=JobRead, status_code=201, name="create_job")
def create_job(body: JobCreate, session: SessionDep, settings: SettingsDep, user: CurrentResearcher) -> JobRead:
    job = job_service.enqueue_job(
        session, kind=body.kind, params=body.params, created_by=user, max_attempts=settings.job_max_attempts
    )
    return JobRead.model_validate(job)


@router.get("/jobs", response_model=list[JobRead], name="list_jobs")
def list_jobs(
    session: SessionDep,
    _user: CurrentResearcher,
    status: JobStatus | None = None,
    kind: JobKind | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> list[JobRead]:
    return [JobRead.model_validate(j) for j in job_service.list_jobs(session, status=status, kind=kind, limit=limit)]


@router.get("/jobs/{job_id}", response_model=JobRead, name="get_job")
def get_job(job_id: int, session: SessionDep, _user: CurrentResearcher) -> JobRead:
    return JobRead.model_validate(job_service.get_job(session, job_id=job_id))


@router.get(
    "/jobs/{job_id}/file",
    response_class=FileResponse,
    name="job_file",
    responses={
        200: {"content": {"application/x-ndjson": {}}, "description": "the export job's JSON lines"},
        409: {"description": "the job has not succeeded (yet)"},
    },
)
def job_file(job_id: int, session: SessionDep, settings: SettingsDep, _user: CurrentResearcher) -> FileResponse:
    """Download what a succeeded export job wrote."""
    path = job_service.export_file(session, job_id=job_id, data_dir=settings.data_dir)
    return FileResponse(path, media_type="application/x-ndjson", filename=f"ranklab-{path.name}")


@router.post("/jobs/{job_id}/cancel", response_model=JobRead, name="cancel_job")
def cancel_job(job_id: int, session: SessionDep, user: CurrentResearcher) -> JobRead:
    return JobRead.model_validate(job_service.request_cancel(session, job_id=job_id, actor=user))


@router.get("/workers", response_model=list[WorkerRead], name="list_workers")
def list_workers(session: SessionDep, settings: SettingsDep, _user: CurrentResearcher) -> list[WorkerRead]:
    """Every worker the table knows: running, idle, not responding (not seen for the stale time), stopped."""
    views = worker_service.list_workers(session, stale_after_s=settings.worker_stale_after_s)
    return [WorkerRead.model_validate(v) for v in views]


@router.get("/schedules", response_model=list[ScheduleRead], name="list_schedules")
def list_schedules(session: SessionDep, _user: CurrentResearcher) -> list[ScheduleRead]:
    return [ScheduleRead.model_validate(s) for s in schedule_service.list_schedules(session)]


@router.post("/schedules", response_model=ScheduleRead, status_code=201, name="create_schedule")
def create_schedule(
    body: ScheduleCreate, session: SessionDep, settings: SettingsDep, _user: CurrentResearcher
) -> ScheduleRead:
    schedule = schedule_service.create_schedule(
        session, **body.model_dump(), min_interval_s=settings.schedule_min_interval_s
    )
    return ScheduleRead.model_validate(schedule)


@router.get("/schedules/{schedule_id}", response_model=ScheduleRead, name="get_schedule")
def get_schedule(schedule_id: int, session: SessionDep, _user: CurrentResearcher) -> ScheduleRead:
    return ScheduleRead.model_validate(schedule_service.get_schedule(session, schedule_id=schedule_id))


@router.patch("/schedules/{schedule_id}", response_model=ScheduleRead, name="update_schedule")
def update_schedule(
    schedule_id: int, body: ScheduleUpdate, session: SessionDep, settings: SettingsDep, _user: CurrentResearcher
) -> ScheduleRead:
    schedule = schedule_service.get_schedule(session, schedule_id=schedule_id)
    changes = body.model_dump(exclude_unset=True)
    updated = schedule_service.update_schedule(
        session, schedule=schedule, changes=changes, min_interval_s=settings.schedule_min_interval_s
    )
    return ScheduleRead.model_validate(updated)


@router.delete("/schedules/{schedule_id}", status_code=204, response_class=Response, name="delete_schedule")
def delete_schedule(schedule_id: int, session: SessionDep, _user: CurrentResearcher) -> Response:
    schedule = schedule_service.get_schedule(session, schedule_id=schedule_id)
    schedule_service.delete_schedule(session, schedule=schedule)
    return Response(status_code=204)


@router.get("/models", response_model=list[ModelVersionRead], name="list_models")
def list_models(session: SessionDep, _user: CurrentResearcher, kind: ModelKind | None = None) -> list[ModelVersionRead]:
    return [ModelVersionRead.model_validate(m) for m in model_registry.list_models(session, kind=kind)]


@router.get("/storage", response_model=StorageRead, name="storage_report")
def storage_report(session: SessionDep, settings: SettingsDep, _user: CurrentResearcher) -> StorageRead:
    """What uses the data folder's disk, and what `ranklab storage --apply` would remove (this removes nothing)."""
    report = storage_service.configured_report(session, settings=settings)
    return StorageRead.model_validate(storage_service.report_dict(report))
