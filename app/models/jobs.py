"""The background-work tables: the job queue, schedules, rounds of the loop, and named leases (app.services.jobs,
schedules, rounds; the worker in trainer/worker.py). Same metadata as app.models, which re-exports them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.enums import JobKind, JobStatus, RoundStatus, RoundStep
from app.models.base import Base, enum_column, utcnow


class Job(Base):
    """A unit of background work; the jobs table is the queue."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress_range"),
        Index("ix_jobs_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[JobKind] = mapped_column(enum_column(JobKind, constraint=False))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[JobStatus] = mapped_column(enum_column(JobStatus), default=JobStatus.queued)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    metrics: Mapped[list[Any]] = mapped_column(default=list)
    log_tail: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    device: Mapped[str | None] = mapped_column(String(32))
    heartbeat_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    checkpoint: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    output_model_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    schedule_id: Mapped[int | None] = mapped_column(ForeignKey("schedules.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class Schedule(Base):
    """A cron expression or a data trigger that queues jobs of one kind."""

    __tablename__ = "schedules"
    __table_args__ = (CheckConstraint("cron IS NOT NULL OR min_new_rankings IS NOT NULL", name="has_trigger"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[JobKind] = mapped_column(enum_column(JobKind, constraint=False))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    cron: Mapped[str | None] = mapped_column(String(100))
    min_new_rankings: Mapped[int | None]
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    last_run_at: Mapped[datetime | None]
    next_run_at: Mapped[datetime | None]
    last_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", use_alter=True))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Round(Base):
    """One round of the loop: [SFT ->] sample -> rank -> reward model -> PPO or DPO -> evaluation, advanced by the
    worker."""

    __tablename__ = "rounds"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[RoundStatus] = mapped_column(enum_column(RoundStatus), default=RoundStatus.running)
    step: Mapped[RoundStep] = mapped_column(enum_column(RoundStep), default=RoundStep.sample)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    start_policy_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    sft_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    sample_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    reward_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    policy_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    evaluate_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    reward_model_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    policy_model_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    error: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None]


class Lease(Base):
    """Named leases (e.g. the single scheduler among many workers)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime]
