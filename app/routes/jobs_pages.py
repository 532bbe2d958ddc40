"""Jobs, schedules and models pages (researchers). Live updates come from the JSON API via app/static/js/jobs.js."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.deps import CurrentResearcher, SessionDep, SettingsDep
from app.enums import WorkerStatus
from app.models import Job, JobKind, JobStatus, ModelVersion, Schedule
from app.schemas.jobs import JOB_KINDS, JobRead
from app.services import job_queue, param_forms
from app.services import jobs as job_service
from app.services import schedules as schedule_service
from app.services import storage as storage_service
from app.services import workers as worker_service
from app.services.job_queue import Waiting
from app.services.storage import StorageReport
from app.services.workers import WorkerView
from app.web import render

router = APIRouter(tags=["pages"])


def _when(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value is not None else ""


def job_row(job: Job) -> dict[str, Any]:
    """What the jobs table shows for one job."""
    return {
        "id": job.id,
        "kind": job.kind.value,
        "status": job.status.value,
        "percent": round(job.progress * 100),
        "worker": f"{job.worker_id or ''} {job.device or ''}".strip(),
        "attempts": f"{job.attempts}/{job.max_attempts}",
        "created": _when(job.created_at),
        "finished": _when(job.finished_at),
        "error": job.error or "",
    }


def param_docs() -> list[dict[str, Any]]:
    """Each job kind with its params, defaults and docstrings (the queue form's help)."""
    kinds = []
    for kind, spec in JOB_KINDS.items():
        fields = [
            {"name": name, "default": _default_text(f.get_default(call_default_factory=True)), "doc": f.description}
            for name, f in spec.params_model.model_fields.items()
        ]
        example = json.dumps(spec.example, indent=2)
        form = param_forms.form_for(spec.params_model, values=spec.example, id_prefix=f"{kind.value}-")
        kinds.append({"kind": kind.value, "doc": spec.description, "fields": fields, "example": example, "form": form})
    return kinds


def _default_text(value: Any) -> str:
    return json.dumps(value, default=str) if value is not None else ""


def schedule_row(schedule: Schedule) -> dict[str, Any]:
    """What the schedules table shows for one schedule."""
    return {
        "id": schedule.id,
        "name": schedule.name,
        "kind": schedule.kind.value,
        "trigger": " and ".join(
            t
            for t in (
                f"cron {schedule.cron}" if schedule.cron else "",
                f">= {schedule.min_new_rankings} new rankings" if schedule.min_new_rankings else "",
            )
            if t
        ),
        "params": json.dumps(schedule.params),
        "enabled": schedule.enabled,
        "next_run": _when(schedule.next_run_at),
        "last_run": _when(schedule.last_run_at),
        "last_job_id": schedule.last_job_id,
    }


def model_row(model: ModelVersion) -> dict[str, Any]:
    """What the models table shows for one model version."""
    return {
        "id": model.id,
        "kind": model.kind.value,
        "name": model.name,
        "parent_id": model.parent_id or "",
        "job_id": model.job_id,
        "metrics": ", ".join(f"{k}={v}" for k, v in sorted(model.metrics.items()) if not isinstance(v, list | dict)),
        "created": _when(model.created_at),
        "path": model.path,
    }


_WORKER_STATUS = {
    WorkerStatus.idle: "idle",
    WorkerStatus.running: "running",
    WorkerStatus.not_responding: "not responding",
    WorkerStatus.stopped: "stopped",
}


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    return f"{seconds / 60:.0f} min ago" if seconds < 90 * 60 else f"{seconds / 3600:.0f} h ago"


def _device_text(view: WorkerView) -> str:
    caps = view.capabilities
    if caps.get("gpus"):
        memory = f", {caps['gpu_memory_gib']} GiB" if caps.get("gpu_memory_gib") else ""
        return f"{view.device} · {caps['gpus']} × {caps.get('gpu', 'GPU')}{memory}"
    return f"{view.device} · {caps['cpus']} CPUs" if caps.get("cpus") else view.device


def worker_row(view: WorkerView, request: Request) -> dict[str, Any]:
    """What the Workers table shows for one worker."""
    job = None
    if view.current_job_id is not None:
        href = str(request.app.url_path_for("job_page", job_id=str(view.current_job_id)))
        kind = view.current_job_kind.value if view.current_job_kind else "?"
        job = {"href": href, "text": f"job {view.current_job_id}", "kind": kind}
    label = _WORKER_STATUS[view.status]
    return {
        "id": view.id,
        "status": view.status.value,
        "label": f"{label}, was running" if job and view.status == WorkerStatus.not_responding else label,
        "job": job,
        "seen": _ago(view.seen_s_ago),
        "device": _device_text(view),
        "kinds": ", ".join(view.kinds),
        "started": _when(view.started_at),
    }


def storage_view(report: StorageReport) -> dict[str, Any]:
    """The jobs page's Storage section: what uses the disk, how much is free, what the cleanup would remove."""
    size = storage_service.human_bytes
    return {
        "total": size(report.total_bytes),
        "free": size(report.free_bytes),
        "disk": size(report.disk_bytes),
        "rows": [{"what": u.category, "size": size(u.bytes)} for u in report.usage if u.bytes],
        "database": f"{report.database}: {size(report.database_bytes)}",
        "removable": size(report.removable_bytes) if report.removals else "",
        "removals": len(report.removals),
    }


@router.get("/jobs", response_class=HTMLResponse, name="jobs_page")
def jobs_page(request: Request, session: SessionDep, settings: SettingsDep, user: CurrentResearcher) -> HTMLResponse:
    rows = [job_row(j) for j in job_service.list_jobs(session, limit=100)]
    views = worker_service.list_workers(session, stale_after_s=settings.worker_stale_after_s)
    workers = [worker_row(v, request) for v in views if v.status != WorkerStatus.stopped]
    stopped = len(views) - len(workers)
    example = json.dumps(JOB_KINDS[JobKind.sample].example, indent=2)
    return render(
        request,
        "jobs/list.html",
        user=user,
        jobs=rows,
        workers=workers,
        stopped_workers=stopped,
        kinds=param_docs(),
        example_params=example,
        storage=storage_view(storage_service.configured_report(session, settings=settings)),
    )


@router.get("/jobs/{job_id}", response_class=HTMLResponse, name="job_page")
def job_page(
    job_id: int, request: Request, session: SessionDep, settings: SettingsDep, user: CurrentResearcher
) -> HTMLResponse:
    job = job_service.get_job(session, job_id=job_id)
    data = JobRead.model_validate(job).model_dump(mode="json")
    queue = None
    if job.status == JobStatus.queued:
        state = job_queue.queue_state(session, job=job, stale_after_s=settings.worker_stale_after_s)
        queue = queue_view(state, request, job=job, poll_s=settings.worker_poll_s)
    return render(
        request,
        "jobs/detail.html",
        user=user,
        job=job_row(job),
        params=_params_text(job.params),
        job_json=data,
        queue=queue,
    )


def _workers(n: int) -> str:
    return f"{n} worker{'s' if n != 1 else ''}"


def waiting_text(state: job_queue.QueueState, *, kind: str, poll_s: float) -> str:
    """One sentence: why the job has not been claimed yet."""
    if state.waiting == Waiting.idle_worker:
        n = len(state.idle)
        after = ", once the jobs ahead of it are taken" if state.position > 1 else ""
        when = f"next look at the queue (every {poll_s:g} s){after}"
        if n == 1:
            return f"1 idle worker takes {kind} jobs: it claims this job at its {when}."
        return f"{n} idle workers take {kind} jobs: one of them claims this job at its {when}."
    if state.waiting == Waiting.all_busy:
        if len(state.busy) == 1:
            return f"The worker that takes {kind} jobs is busy: this job waits until it finishes its job."
        count = f" {len(state.busy)}" if state.busy else ""
        return f"All{count} workers that take {kind} jobs are busy: this job waits until one of them finishes its job."
    if state.waiting == Waiting.no_worker_for_kind:
        n = len(state.others)
        return (
            f"{_workers(n)} {'is' if n == 1 else 'are'} alive, but none takes {kind} jobs: start a worker that does "
            f"(ranklab worker --kinds {kind}, or without --kinds)."
        )
    return "No worker is alive: this job waits until one is started (ranklab worker)."


def queue_view(state: job_queue.QueueState, request: Request, *, job: Job, poll_s: float) -> dict[str, Any]:
    """Why a job waits: its place, what is ahead, which workers are alive and what they run."""

    def line(j: Job) -> dict[str, str]:
        href = str(request.app.url_path_for("job_page", job_id=str(j.id)))
        seen = f"heartbeat {_when(j.heartbeat_at)}" if j.heartbeat_at else ""
        who = f"{j.worker_id or '?'} ({j.device or '?'})"
        return {
            "href": href,
            "text": f"job {j.id} · {j.kind.value}",
            "worker": who,
            "seen": seen,
            "percent": f"{round(j.progress * 100)}%",
        }

    return {
        "position": state.position,
        "ahead": [line(j) for j in state.ahead],
        "running": [line(j) for j in state.running],
        "stale": [line(j) for j in state.stale],
        "waiting": state.waiting.value,
        "waiting_text": waiting_text(state, kind=job.kind.value, poll_s=poll_s),
        "not_responding": [worker_row(w, request) for w in state.not_responding],
    }


@router.get("/schedules", response_class=HTMLResponse, name="schedules_page")
def schedules_page(request: Request, session: SessionDep, user: CurrentResearcher) -> HTMLResponse:
    rows = [schedule_row(s) for s in schedule_service.list_schedules(session)]
    # each kind starts from its documented example, which its params model accepts (tested)
    kinds = [{"value": kind.value, "params": json.dumps(spec.example)} for kind, spec in JOB_KINDS.items()]
    return render(request, "jobs/schedules.html", user=user, schedules=rows, kinds=kinds)


def _params_text(params: dict[str, object]) -> str:
    """One `name = value` line per param, so long id lists wrap instead of running down the page."""
    return "\n".join(f"{name} = {json.dumps(value)}" for name, value in params.items())
