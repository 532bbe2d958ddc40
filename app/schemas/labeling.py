"""Request/response models for prompts, ranking tasks, assignments and rankings."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.models import MAX_OVERLAP, MAX_PRIORITY, Split, TaskKind, TaskStatus, TaskType, UserStatus
from app.schemas.fields import Flag, Id, Whole


class Message(BaseModel):
    """One turn of a conversation."""

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=100_000)


class PromptIn(BaseModel):
    """A prompt: plain ``text`` (one user message; an HH transcript is read as its turns) or ``messages``."""

    text: str | None = Field(default=None, max_length=100_000)
    messages: list[Message] | None = Field(
        default=None, max_length=200, description="the conversation, ending with a user message"
    )
    split: Split | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_form(self) -> PromptIn:
        if (self.text is None) == (self.messages is None):
            raise ValueError("give either 'text' or 'messages'")
        return self


class PromptsCreate(BaseModel):
    prompts: list[PromptIn] = Field(min_length=1, max_length=10_000)
    split_ratio: str | None = Field(default=None, description="train,validation,eval shares, e.g. 0.8,0.1,0.1")


class PromptsCreated(BaseModel):
    created: int
    duplicates: int
    ids: list[int]
    duplicate_ids: list[int] = []


class PromptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    text: str
    messages: list[Message]
    split: Split
    source: str
    metadata: dict[str, Any] = Field(validation_alias="meta")
    created_at: datetime


class PromptPage(BaseModel):
    total: int
    items: list[PromptRead]


class TaskCreate(BaseModel):
    prompt: Id | str | list[Message] = Field(
        description="an existing prompt id, the prompt text, or the conversation (messages ending with a user turn)"
    )
    completions: list[str]
    model: str = Field(default="", max_length=200)
    kind: TaskKind = TaskKind.production
    overlap: Whole = Field(default=1, ge=1, le=MAX_OVERLAP)
    priority: Whole = Field(default=0, ge=-MAX_PRIORITY, le=MAX_PRIORITY)
    gold_ranking: list[list[Whole]] | None = Field(
        default=None, description="gold and screening kinds: the researcher's ranking, buckets of completion indexes"
    )


class TaskCreated(BaseModel):
    id: int
    prompt_id: int
    completion_ids: list[int]


class TasksCreated(BaseModel):
    created: int
    tasks: list[TaskCreated]


class TaskSummary(BaseModel):
    id: int
    prompt_id: int
    prompt_text: str
    kind: TaskKind
    status: TaskStatus
    k: int
    overlap: int
    slots_taken: int
    rankings: int
    created_at: datetime


class TaskPage(BaseModel):
    total: int
    items: list[TaskSummary]


class CompletionRead(BaseModel):
    id: int
    text: str


class RankingRead(BaseModel):
    id: int
    assignment_id: int | None
    task_id: int
    labeler_id: int
    by_researcher: bool
    ranking: list[list[int]]
    not_rankable: bool
    ratings: dict[int, int]
    flags: dict[int, list[str]]
    note: str
    time_spent_ms: int | None
    guideline_version: int | None
    created_at: datetime
    submitted_today: int | None = None
    labeler_status: UserStatus | None = None
    """On a submit: the submitter's account status after it (a screening labeler passes or goes to review)."""
    screening_done: int | None = None
    """On a submit by a labeler in screening: how many screening tasks they have ranked."""


class PromptView(BaseModel):
    id: int
    text: str
    messages: list[Message]
    """The conversation; the outputs are candidates for the next assistant turn."""


class TaskDetail(BaseModel):
    id: int
    prompt: PromptView
    kind: TaskKind
    status: TaskStatus
    overlap: int
    slots_taken: int
    completions: list[CompletionRead]
    rankings: list[RankingRead]


class AssignmentRead(BaseModel):
    assignment_id: int
    task_type: TaskType = TaskType.ranking
    """ranking: rank the completions; demonstration: write the answer (the completions are starting points)."""
    prompt: PromptView
    completions: list[CompletionRead]
    expires_at: datetime
    kind: TaskKind | None = None
    """The task's kind, for researchers only (a labeler never learns that a task is a hidden gold check)."""


class RankingSubmit(BaseModel):
    ranking: list[list[Id]] = Field(max_length=20)
    not_rankable: Flag = False
    ratings: dict[int, Whole] = Field(default_factory=dict)
    flags: dict[int, list[str]] = Field(default_factory=dict)
    note: str = ""
    idempotency_key: str


class SkipIn(BaseModel):
    reason: str


class RecentRankingRead(BaseModel):
    id: int
    task_id: int
    prompt_excerpt: str
    ranking: list[list[int]]
    not_rankable: bool
    created_at: datetime
    revisable_until: datetime | None
    """Until when the labeler may still correct it; None when they no longer can."""


class RevisionView(BaseModel):
    """What the ranking page needs to show a stored ranking for correction."""

    ranking: RankingRead
    prompt: PromptView
    completions: list[CompletionRead]
    revisable_until: datetime | None


class RankingRevise(BaseModel):
    ranking: list[list[Id]] = Field(max_length=20)
    not_rankable: Flag = False
    ratings: dict[int, Whole] = Field(default_factory=dict)
    flags: dict[int, list[str]] = Field(default_factory=dict)
    note: str = ""


class LeaseRead(BaseModel):
    assignment_id: int
    expires_at: datetime


class SkipRead(BaseModel):
    assignment_id: int
    status: str


class LabelingStats(BaseModel):
    submitted_today: int
