"""JSON API: prompts, ranking tasks, and the labeling loop (next, submit, skip)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from fastapi.responses import JSONResponse

from app.db import INT64_MAX
from app.deps import CurrentLabeler, CurrentResearcher, SessionDep, SettingsDep
from app.models import (
    Assignment,
    Prompt,
    Ranking,
    RankingTask,
    Role,
    Split,
    TaskKind,
    TaskStatus,
    TaskType,
    UserStatus,
    utcnow,
)
from app.schemas.labeling import (
    AssignmentRead,
    CompletionRead,
    LabelingStats,
    LeaseRead,
    PromptPage,
    PromptRead,
    PromptsCreate,
    PromptsCreated,
    PromptView,
    RankingRead,
    RankingRevise,
    RankingSubmit,
    RecentRankingRead,
    RevisionView,
    SkipIn,
    SkipRead,
    TaskCreate,
    TaskCreated,
    TaskDetail,
    TaskPage,
    TaskSummary,
)
from app.services import assignment as assignment_service
from app.services import imports as import_service
from app.services import prompts as prompt_service
from app.services import rankings as ranking_service
from app.services import revisions as revision_service
from app.services import screening as screening_service
from app.services import tasks as task_service
from app.services.assignment import AssignmentView
from app.services.rankings import RankingSubmission

router = APIRouter(prefix="/api/v1", tags=["labeling"])


@router.post("/prompts", response_model=PromptsCreated, status_code=201, name="api_create_prompts")
def create_prompts(body: PromptsCreate, session: SessionDep, researcher: CurrentResearcher) -> PromptsCreated:
    ratios = prompt_service.parse_split_ratios(body.split_ratio) if body.split_ratio else None
    items = prompt_service.new_prompts(body.prompts)
    result = prompt_service.import_prompts(session, prompts=items, created_by=researcher, split_ratios=ratios)
    return PromptsCreated(**vars(result))


@router.post(
    "/prompts/import", response_model=PromptsCreated, status_code=201, name="api_import_prompts",
    responses={422: {"description": "a bad line (named with its number and reason); nothing was imported"}},
)  # fmt: skip
def import_prompts_file(
    session: SessionDep,
    researcher: CurrentResearcher,
    file: Annotated[
        UploadFile,
        File(
            description="JSONL (text/prompt, messages, ShareGPT conversations or HH "
            "chosen per line) or CSV with a 'text' column"
        ),
    ],
    split_ratio: Annotated[str, Form(description="train,validation,eval shares, e.g. 0.8,0.1,0.1")] = "",
) -> PromptsCreated:
    """Import a prompts file as one unit: every line is checked first; any bad line imports nothing."""
    ratios = prompt_service.parse_split_ratios(split_ratio) if split_ratio.strip() else None
    result = import_service.import_prompts_file(
        session, data=file.file.read(), filename=file.filename or "", created_by=researcher, split_ratios=ratios
    )
    return PromptsCreated(**vars(result))


@router.get("/prompts", response_model=PromptPage, name="api_list_prompts")
def list_prompts(
    session: SessionDep,
    _r: CurrentResearcher,
    q: Annotated[str, Query(max_length=prompt_service.MAX_SEARCH_CHARS)] = "",
    split: Split | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> PromptPage:
    rows, total = prompt_service.search_prompts(session, query=q, split=split, limit=limit, offset=offset)
    return PromptPage(total=total, items=[PromptRead.model_validate(p) for p in rows])


@router.post("/tasks", response_model=TaskCreated, status_code=201, name="api_create_task")
def create_task(body: TaskCreate, session: SessionDep, researcher: CurrentResearcher) -> TaskCreated:
    spec = task_service.ExternalTask(**body.model_dump(exclude={"gold_ranking"}))
    task = screening_service.create_task_with_gold(
        session, spec=spec, gold_ranking=body.gold_ranking, created_by=researcher
    )
    return TaskCreated(id=task.id, prompt_id=task.prompt_id, completion_ids=task_service.completion_ids(task))


@router.get("/tasks", response_model=TaskPage, name="api_list_tasks")
def list_tasks(
    session: SessionDep,
    _r: CurrentResearcher,
    q: Annotated[str, Query(max_length=prompt_service.MAX_SEARCH_CHARS)] = "",
    kind: TaskKind | None = None,
    status: TaskStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> TaskPage:
    rows, total = task_service.list_tasks(session, kind=kind, status=status, query=q, limit=limit, offset=offset)
    return TaskPage(total=total, items=[_summary(t, p.text, n) for t, p, n in rows])


@router.get("/tasks/{task_id}", response_model=TaskDetail, name="api_get_task")
def get_task(task_id: int, session: SessionDep, _r: CurrentResearcher) -> TaskDetail:
    task = task_service.get_task(session, task_id=task_id)
    rankings = ranking_service.rankings_for_task(session, task_id=task_id)
    return TaskDetail(
        id=task.id,
        prompt=_prompt_view(prompt_service.get_prompt(session, prompt_id=task.prompt_id)),
        kind=task.kind,
        status=task.status,
        overlap=task.overlap,
        slots_taken=task.slots_taken,
        completions=[CompletionRead(id=i.completion_id, text=i.completion.text) for i in task.items],
        rankings=[ranking_read(r) for r, _name in rankings],
    )


@router.get(
    "/labeling/next",
    response_model=AssignmentRead,
    response_model_exclude_none=True,  # a labeler's task carries no `kind` key at all (hidden gold looks like any)
    name="api_next_task",
    responses={204: {"description": "no task"}},
)
def next_task(
    session: SessionDep,
    settings: SettingsDep,
    labeler: CurrentLabeler,
    type: Annotated[TaskType | None, Query(description="only rankings, or only demonstrations to write")] = None,
) -> Response | AssignmentRead:
    got = assignment_service.next_assignment_view(session, labeler=labeler, settings=settings, task_type=type)
    if got is None:
        return Response(status_code=204)
    return _assignment_read(*got, show_kind=labeler.role != Role.labeler)


@router.post(
    "/labeling/assignments/{assignment_id}/ranking",
    response_model=RankingRead,
    status_code=201,
    name="api_submit_ranking",
    responses={200: {"description": "replay of an already stored ranking"}},
)
def submit_ranking(
    assignment_id: int, body: RankingSubmit, session: SessionDep, settings: SettingsDep, labeler: CurrentLabeler
) -> RankingRead | JSONResponse:
    ranking, replayed = ranking_service.submit_ranking(
        session,
        labeler=labeler,
        assignment_id=assignment_id,
        submission=RankingSubmission(**body.model_dump()),
        settings=settings,
    )
    read = ranking_read(ranking)
    read.submitted_today = ranking_service.submitted_today(session, labeler=labeler)
    read.labeler_status = labeler.status
    if labeler.status == UserStatus.screening:
        read.screening_done = screening_service.screening_rankings_done(session, user=labeler)
    if replayed:
        return JSONResponse(read.model_dump(mode="json"), status_code=200)
    return read


@router.post("/labeling/assignments/{assignment_id}/skip", response_model=SkipRead, name="api_skip_assignment")
def skip(assignment_id: int, body: SkipIn, session: SessionDep, labeler: CurrentLabeler) -> SkipRead:
    done = assignment_service.skip_assignment(session, labeler=labeler, assignment_id=assignment_id, reason=body.reason)
    return SkipRead(assignment_id=done.id, status=done.status.value)


@router.post("/labeling/assignments/{assignment_id}/lease", response_model=LeaseRead, name="api_renew_lease")
def renew_lease(assignment_id: int, session: SessionDep, settings: SettingsDep, labeler: CurrentLabeler) -> LeaseRead:
    """Keep the lease alive while the ranking page is in use; takes an expired lease back if the task is still free."""
    done = assignment_service.renew_lease(session, labeler=labeler, assignment_id=assignment_id, settings=settings)
    return LeaseRead(assignment_id=done.id, expires_at=done.expires_at)


@router.get("/labeling/rankings", response_model=list[RecentRankingRead], name="api_my_rankings")
def my_rankings(
    session: SessionDep,
    settings: SettingsDep,
    labeler: CurrentLabeler,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> list[RecentRankingRead]:
    """The caller's newest rankings, with how long each can still be revised."""
    window = timedelta(minutes=settings.revision_minutes)
    rows = revision_service.recent_rankings(session, labeler=labeler, window=window, limit=limit)
    return [
        RecentRankingRead(
            id=r.ranking.id,
            task_id=r.ranking.task_id,
            prompt_excerpt=r.prompt_text[:160],
            ranking=r.ranking.buckets,
            not_rankable=r.ranking.not_rankable,
            created_at=r.ranking.created_at,
            revisable_until=r.revisable_until,
        )
        for r in rows
    ]


@router.get("/labeling/rankings/{ranking_id}", response_model=RevisionView, name="api_my_ranking")
def my_ranking(ranking_id: int, session: SessionDep, settings: SettingsDep, labeler: CurrentLabeler) -> RevisionView:
    """One of the caller's rankings with its task, in the order they saw it (to revise it)."""
    ranking = revision_service.own_ranking(session, labeler=labeler, ranking_id=ranking_id)
    view = assignment_service.load_view(session, task_id=ranking.task_id)
    task = task_service.get_task(session, task_id=ranking.task_id)
    order = revision_service.display_order(session, ranking=ranking)
    return RevisionView(
        ranking=ranking_read(ranking),
        prompt=prompt_view(view),
        completions=[CompletionRead(id=cid, text=view.completions[cid]) for cid in order],
        revisable_until=revision_service.revisable_until(
            ranking, task.kind, utcnow(), timedelta(minutes=settings.revision_minutes)
        ),
    )


@router.put("/labeling/rankings/{ranking_id}", response_model=RankingRead, name="api_revise_ranking")
def revise(
    ranking_id: int, body: RankingRevise, session: SessionDep, settings: SettingsDep, labeler: CurrentLabeler
) -> RankingRead:
    """Correct a ranking within its revision window; the replaced version is kept in the audit log."""
    submission = RankingSubmission(**body.model_dump(), idempotency_key=f"revision-{ranking_id}")
    ranking = revision_service.revise_ranking(
        session,
        labeler=labeler,
        ranking_id=ranking_id,
        submission=submission,
        window=timedelta(minutes=settings.revision_minutes),
    )
    return ranking_read(ranking)


@router.get("/labeling/stats", response_model=LabelingStats, name="api_labeling_stats")
def stats(session: SessionDep, labeler: CurrentLabeler) -> LabelingStats:
    return LabelingStats(submitted_today=ranking_service.submitted_today(session, labeler=labeler))


def _assignment_read(assignment: Assignment, view: AssignmentView, *, show_kind: bool) -> AssignmentRead:
    return AssignmentRead(
        assignment_id=assignment.id,
        task_type=view.task_type,
        prompt=prompt_view(view),
        completions=[CompletionRead(id=cid, text=view.completions[cid]) for cid in assignment.display_order],
        expires_at=assignment.expires_at,
        kind=view.kind if show_kind else None,
    )


def _prompt_view(prompt: Prompt) -> PromptView:
    return PromptView(id=prompt.id, text=prompt.text, messages=prompt.messages)  # type: ignore[arg-type]


def prompt_view(view: AssignmentView) -> PromptView:
    """The conversation an assignment shows."""
    return PromptView(id=view.prompt_id, text=view.prompt_text, messages=view.prompt_messages)  # type: ignore[arg-type]


def _summary(task: RankingTask, prompt_text: str, n_rankings: int) -> TaskSummary:
    return TaskSummary(
        id=task.id,
        prompt_id=task.prompt_id,
        prompt_text=prompt_text,
        kind=task.kind,
        status=task.status,
        k=task.k,
        overlap=task.overlap,
        slots_taken=task.slots_taken,
        rankings=n_rankings,
        created_at=task.created_at,
    )


def ranking_read(ranking: Ranking) -> RankingRead:
    """The API view of a stored ranking."""
    return RankingRead(
        id=ranking.id,
        assignment_id=ranking.assignment_id,
        task_id=ranking.task_id,
        labeler_id=ranking.labeler_id,
        by_researcher=ranking.by_researcher,
        ranking=ranking.buckets,
        not_rankable=ranking.not_rankable,
        ratings={i.completion_id: i.rating for i in ranking.items if i.rating is not None},
        flags={i.completion_id: list(i.flags) for i in ranking.items if i.flags},
        note=ranking.note,
        time_spent_ms=ranking.time_spent_ms,
        guideline_version=ranking.guideline_version,
        created_at=ranking.created_at,
    )
