"""Every table, as SQLAlchemy 2.0 typed models (see DESIGN.md section 2); the job-queue, agreement-aggregate and workers
tables sit in app.models_jobs, app.models_agreement and app.models_workers (same metadata, imported at the end). Enums
live in app.enums."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from app.enums import (
    AssignmentStatus,
    JobKind,
    JobStatus,
    ModelKind,
    PromptSource,
    Role,
    RoundStatus,
    RoundStep,
    Split,
    TaskKind,
    TaskStatus,
    UserStatus,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

FLAGS = (
    "fails_instruction",
    "inappropriate_for_assistant",
    "hallucination",
    "satisfies_constraint",
    "sexual_content",
    "violent_content",
    "encourages_harm",
    "denigrates_protected_class",
    "harmful_advice",
    "expresses_opinion",
    "moral_judgment",
)
"""Per-completion content flags from InstructGPT's labeling interface."""

MIN_K, MAX_K = 4, 9
MAX_OVERLAP = 100
"""Most labelers one task may ask for (also what a 32-bit column holds comfortably)."""
MAX_PRIORITY = 1_000_000
"""Task priorities lie within plus or minus this (the column is 32-bit on PostgreSQL)."""
MIN_RATING, MAX_RATING = 1, 7


def utcnow() -> datetime:
    """Timezone-aware now in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite drops tzinfo on read)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


def _enum(cls: type[enum.Enum]) -> SAEnum:
    return SAEnum(
        cls,
        name=cls.__name__.lower(),
        native_enum=False,
        create_constraint=True,
        length=20,
        values_callable=lambda e: [m.value for m in e],
    )


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[Role] = mapped_column(_enum(Role))
    status: Mapped[UserStatus] = mapped_column(_enum(UserStatus), default=UserStatus.active)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    screening_agreement: Mapped[float | None] = mapped_column(Float)
    screening_flag_agreement: Mapped[float | None] = mapped_column(Float)
    screening_completed_at: Mapped[datetime | None]
    gold_alert: Mapped[bool] = mapped_column(Boolean, default=False)
    auth_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Bumped to sign the user out everywhere: cookies and tokens carry the epoch they were issued in."""


class LoginAttempt(Base):
    """Failed and successful logins, for rate limiting (shared across web workers)."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_username_at", "username", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    client: Mapped[str] = mapped_column(String(64), index=True)
    succeeded: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(64))
    target_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Guideline(Base):
    """A versioned markdown page of labeling instructions."""

    __tablename__ = "guidelines"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(unique=True)
    body: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Prompt(Base):
    __tablename__ = "prompts"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[PromptSource] = mapped_column(_enum(PromptSource), default=PromptSource.import_)
    split: Mapped[Split] = mapped_column(_enum(Split), default=Split.train, index=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersion(Base):
    """The model registry: SFT, reward and policy checkpoints in Hugging Face format."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[ModelKind] = mapped_column(_enum(ModelKind), index=True)
    name: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(Text)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", use_alter=True))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


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
    """One prompt with its K (4-9) completions to rank."""

    __tablename__ = "ranking_tasks"
    __table_args__ = (
        CheckConstraint(f"k BETWEEN {MIN_K} AND {MAX_K}", name="k_range"),
        CheckConstraint("overlap >= 1", name="overlap_positive"),
        CheckConstraint("slots_taken >= 0", name="slots_nonnegative"),
        Index("ix_ranking_tasks_pool", "status", "kind", "priority", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[TaskKind] = mapped_column(_enum(TaskKind), default=TaskKind.production)
    status: Mapped[TaskStatus] = mapped_column(_enum(TaskStatus), default=TaskStatus.open)
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
    status: Mapped[AssignmentStatus] = mapped_column(_enum(AssignmentStatus), default=AssignmentStatus.active)
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


# The job-queue tables, the agreement aggregate tables and the workers table live in their own modules (same
# metadata); imported here so every table is known wherever app.models is (import Worker from app.models_workers).
from app import models_workers  # noqa: E402, F401
from app.models_agreement import (  # noqa: E402
    agreement_days,
    agreement_labelers,
    agreement_matrix,
    agreement_tasks,
    agreement_units,
)
from app.models_jobs import Job, Lease, Round, Schedule  # noqa: E402

__all__ = [
    "JobKind",
    "JobStatus",
    "RoundStatus",
    "RoundStep",
    "Job",
    "Lease",
    "Round",
    "Schedule",
    "agreement_days",
    "agreement_labelers",
    "agreement_matrix",
    "agreement_tasks",
    "agreement_units",
]
