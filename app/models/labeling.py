"""The labeling data: prompts, the model registry, completions, ranking tasks, assignments and rankings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.enums import AssignmentStatus, ModelKind, PromptSource, Split, TaskKind, TaskStatus, TaskType
from app.models.base import MAX_K, MAX_RATING, MIN_K, MIN_RATING, Base, enum_column, utcnow


class Prompt(Base):
    """A conversation (DESIGN.md section 6): ``messages`` ends with a user turn; a plain prompt is one user message."""

    __tablename__ = "prompts"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    """The short text form of the messages, for search and tables (app.services.conversations.text_form)."""
    messages: Mapped[list[Any]] = mapped_column(default=list)
    """``[{"role": "system" | "user" | "assistant", "content": str}, ...]``, ending with a user message."""
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[PromptSource] = mapped_column(enum_column(PromptSource), default=PromptSource.import_)
    split: Mapped[Split] = mapped_column(enum_column(Split), default=Split.train, index=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersion(Base):
    """The model registry: SFT, reward and policy checkpoints in Hugging Face format."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[ModelKind] = mapped_column(enum_column(ModelKind), index=True)
    name: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(Text)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", use_alter=True))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def files_removed_at(self) -> str | None:
        """When `ranklab storage --apply` removed this version's files (the row stays), else None."""
        return (self.metrics or {}).get("files_removed_at")


class Completion(Base):
    __tablename__ = "completions"

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), index=True)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    model_name: Mapped[str] = mapped_column(String(200), default="")
    text: Mapped[str] = mapped_column(Text)
    sampling_params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    token_count: Mapped[int | None]
    finish_reason: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RankingTask(Base):
    """One prompt with its K (4-9) completions to rank, or a demonstration to write (with 0-9 outputs to start from)."""

    __tablename__ = "ranking_tasks"
    __table_args__ = (
        CheckConstraint(
            f"(task_type = 'ranking' AND k BETWEEN {MIN_K} AND {MAX_K}) OR (task_type = 'demonstration' AND k "
            f"BETWEEN 0 AND {MAX_K})",
            name="k_range",
        ),
        CheckConstraint("overlap >= 1", name="overlap_positive"),
        CheckConstraint("slots_taken >= 0", name="slots_nonnegative"),
        Index("ix_ranking_tasks_pool", "status", "kind", "priority", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[TaskKind] = mapped_column(enum_column(TaskKind), default=TaskKind.production)
    task_type: Mapped[TaskType] = mapped_column(
        enum_column(TaskType), default=TaskType.ranking, server_default=TaskType.ranking.value
    )
    """Rank the outputs, or write a demonstration (whose outputs, 0-9 of them, are starting points to rewrite)."""
    status: Mapped[TaskStatus] = mapped_column(enum_column(TaskStatus), default=TaskStatus.open)
    k: Mapped[int]
    overlap: Mapped[int] = mapped_column(default=1)
    slots_taken: Mapped[int] = mapped_column(default=0)
    """Live plus submitted assignments; kept in step with the assignments table."""
    priority: Mapped[int] = mapped_column(default=0)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    items: Mapped[list[TaskCompletion]] = relationship(
        order_by="TaskCompletion.position", cascade="all, delete-orphan", back_populates="task"
    )


class TaskCompletion(Base):
    __tablename__ = "task_completions"
    __table_args__ = (UniqueConstraint("task_id", "completion_id"),)

    task_id: Mapped[int] = mapped_column(ForeignKey("ranking_tasks.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True)
    completion_id: Mapped[int] = mapped_column(ForeignKey("completions.id"), index=True)

    task: Mapped[RankingTask] = relationship(back_populates="items")
    completion: Mapped[Completion] = relationship()


class Assignment(Base):
    """A task leased to one labeler, with the display order that labeler saw."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("task_id", "labeler_id"),
        Index("ix_assignments_labeler_status", "labeler_id", "status"),
        Index("ix_assignments_status_expires", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("ranking_tasks.id", ondelete="CASCADE"))
    labeler_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status: Mapped[AssignmentStatus] = mapped_column(enum_column(AssignmentStatus), default=AssignmentStatus.active)
    display_order: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    submitted_at: Mapped[datetime | None]
    skip_reason: Mapped[str | None] = mapped_column(Text)


class Ranking(Base):
    """One labeler's (or researcher's) ranking of one task: buckets of completion ids, best first."""

    __tablename__ = "rankings"
    __table_args__ = (
        UniqueConstraint("labeler_id", "idempotency_key"),
        Index("ix_rankings_task", "task_id"),
        Index("ix_rankings_labeler_created", "labeler_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int | None] = mapped_column(ForeignKey("assignments.id"), unique=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("ranking_tasks.id", ondelete="CASCADE"))
    labeler_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    by_researcher: Mapped[bool] = mapped_column(Boolean, default=False)
    buckets: Mapped[list[Any]] = mapped_column(default=list)
    not_rankable: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str] = mapped_column(Text, default="")
    time_spent_ms: Mapped[int | None]
    guideline_version: Mapped[int | None]
    idempotency_key: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    items: Mapped[list[RankingItem]] = relationship(cascade="all, delete-orphan", back_populates="ranking")


class RankingItem(Base):
    """Per-completion rank, 1-7 rating and content flags inside one ranking."""

    __tablename__ = "ranking_items"
    __table_args__ = (
        CheckConstraint(f"rating IS NULL OR rating BETWEEN {MIN_RATING} AND {MAX_RATING}", name="rating_range"),
        CheckConstraint("rank >= 0", name="rank_nonnegative"),
    )

    ranking_id: Mapped[int] = mapped_column(ForeignKey("rankings.id", ondelete="CASCADE"), primary_key=True)
    completion_id: Mapped[int] = mapped_column(ForeignKey("completions.id"), primary_key=True)
    rank: Mapped[int | None]
    """Bucket index, 0 = best; NULL when the ranking is "not rankable"."""
    rating: Mapped[int | None]
    flags: Mapped[list[Any]] = mapped_column(default=list)

    ranking: Mapped[Ranking] = relationship(back_populates="items")
