"""Request/response models for demonstrations: tasks, the labeler's answer, review, per-labeler figures."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.models import MAX_K, MAX_OVERLAP, MAX_PRIORITY, DemonstrationOrigin, DemonstrationStatus, TaskKind
from app.schemas.fields import Id, Whole
from app.schemas.labeling import Message


class DemonstrationTasksCreate(BaseModel):
    prompt_ids: list[Id] = Field(min_length=1, max_length=10_000, description="one demonstration task per prompt")
    kind: Literal[TaskKind.production, TaskKind.screening] = TaskKind.production
    overlap: Whole = Field(default=1, ge=1, le=MAX_OVERLAP, description="how many labelers write an answer")
    starting_points: Whole = Field(
        default=0, ge=0, le=MAX_K, description="offer up to this many of the prompt's newest sampled outputs to rewrite"
    )
    priority: Whole = Field(default=0, ge=-MAX_PRIORITY, le=MAX_PRIORITY)


class DemonstrationTasksCreated(BaseModel):
    created: int
    task_ids: list[int]


class DemonstrationSubmit(BaseModel):
    content: str = Field(max_length=50_000, description="the assistant's answer (markdown)")
    source_completion_id: Id | None = Field(
        default=None, description="the task's output this answer was rewritten from (none: written from scratch)"
    )
    idempotency_key: str = Field(max_length=128)


class DemonstrationRevise(BaseModel):
    content: str = Field(max_length=50_000)
    source_completion_id: Id | None = None


class DemonstrationReview(BaseModel):
    action: Literal["accept", "reject", "edit"]
    reason: str = Field(default="", max_length=2000, description="required to reject; shown to the labeler")
    content: str | None = Field(default=None, max_length=50_000, description="the edited answer (edit only)")


class DemonstrationRead(BaseModel):
    id: int
    task_id: int
    prompt_id: int
    labeler_id: int
    content: str
    origin: DemonstrationOrigin
    source_completion_id: int | None
    status: DemonstrationStatus
    original_content: str | None
    """What the labeler wrote, when a reviewer edited it."""
    review_reason: str
    reviewer_id: int | None
    reviewed_at: datetime | None
    time_spent_ms: int | None
    guideline_version: int | None
    created_at: datetime
    updated_at: datetime | None
    screening_demonstrations_written: int | None = None
    """In the answer to a labeler's own submit while they are in screening: their screening demonstrations so far."""


class DemonstrationDetail(DemonstrationRead):
    """A demonstration with what a reviewer needs beside it."""

    messages: list[Message]
    labeler: str
    task_kind: TaskKind
    source_completion_text: str | None


class DemonstrationPage(BaseModel):
    total: int
    items: list[DemonstrationDetail]


class OwnDemonstrationRead(BaseModel):
    id: int
    task_id: int
    prompt_excerpt: str
    messages: list[Message]
    """The conversation the demonstration answers."""
    content: str
    source_completion_id: int | None
    status: DemonstrationStatus
    review_reason: str
    created_at: datetime
    revisable_until: datetime | None


class LabelerDemonstrationsRead(BaseModel):
    labeler_id: int
    username: str
    submitted: int
    accepted: int
    rejected: int
    rewritten: int
    acceptance_rate: float | None
    acceptance_interval: tuple[float, float] | None
    median_seconds: float | None
